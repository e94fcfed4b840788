// Developer machines: tokens from the Azure CLI's signed-in account, by running
// `az account get-access-token` as a child process without blocking the I/O thread.
#pragma once

#include <chrono>

#include "identity/token_source.hpp"

namespace msiproxy {

// `az` is looked up in PATH unless the path has a '/'; MSIPROXY_AZ_PATH overrides it (tests use
// a fake script). A child still running after `timeout` is killed (SIGKILL) and the fetch fails.
std::unique_ptr<token_source> make_azure_cli_source(
    boost::asio::any_io_executor ex, std::string az_path = "az",
    std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Parses `az account get-access-token --output json`: accessToken, and expires_on (epoch
// seconds, newer az) or else expiresOn ("2026-11-29 06:00:00.000000", local time).
fetch_outcome parse_az_cli_token(std::string_view json, sys_time now);

}  // namespace msiproxy
