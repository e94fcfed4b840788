// Service Fabric managed identity: a node-local https endpoint with a self-signed certificate,
// pinned by its SHA-1 thumbprint (azure-identity.md section 7).
#pragma once

#include <array>
#include <cstdint>
#include <optional>

#include "identity/token_source.hpp"

namespace msiproxy {

inline constexpr const char* service_fabric_default_api_version = "2019-07-01-preview";

using sha1_thumbprint = std::array<std::uint8_t, 20>;

// IDENTITY_SERVER_THUMBPRINT with ':' and whitespace removed, 40 hex digits in either case;
// nullopt otherwise.
std::optional<sha1_thumbprint> parse_thumbprint(std::string_view text);

// The source owns its own TLS context, which skips chain and name verification and accepts only
// a leaf certificate whose SHA-1 equals `thumbprint`: the shared client context stays strict.
// IDENTITY_HEADER is read from the environment on every fetch. Throws std::runtime_error when the
// endpoint is not https or the thumbprint is malformed.
std::unique_ptr<token_source> make_service_fabric_source(boost::asio::any_io_executor ex,
                                                         std::string endpoint,
                                                         std::string_view thumbprint,
                                                         std::string api_version, env_lookup env);

}  // namespace msiproxy
