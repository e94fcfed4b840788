// Azure Arc-enabled servers: the local himds agent's challenge-response token endpoint
// (azure-identity.md section 5).
#pragma once

#include "identity/token_source.hpp"

namespace msiproxy {

inline constexpr const char* arc_default_endpoint =
    "http://127.0.0.1:40342/metadata/identity/oauth2/token";
// Where the agent writes its challenge keys; the only directory a challenge may point into.
inline constexpr const char* arc_key_directory = "/var/opt/azcmagent/tokens";
// The agent's binary: its presence alone selects Arc in `auto` (as in MSAL).
inline constexpr const char* arc_himds_path = "/opt/azcmagent/bin/himds";

// key_directory is a parameter for tests only; production passes arc_key_directory.
std::unique_ptr<token_source> make_azure_arc_source(boost::asio::any_io_executor ex,
                                                    boost::asio::ssl::context& tls,
                                                    std::string endpoint,
                                                    std::string key_directory = arc_key_directory);

}  // namespace msiproxy
