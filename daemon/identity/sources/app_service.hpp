// App Service / Functions / Container Apps token endpoint, 2019-08-01 protocol
// (IDENTITY_ENDPOINT + IDENTITY_HEADER; azure-identity.md section 3).
#pragma once

#include "identity/token_source.hpp"

namespace msiproxy {

// The header secret is read from the environment on every fetch: the platform rotates it.
std::unique_ptr<token_source> make_app_service_source(boost::asio::any_io_executor ex,
                                                      boost::asio::ssl::context& tls,
                                                      std::string endpoint, env_lookup env);

}  // namespace msiproxy
