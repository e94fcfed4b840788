// Legacy MSI_ENDPOINT + MSI_SECRET token endpoint, 2017-09-01 protocol: App Service 2017 and
// Azure ML, which share the wire format (azure-identity.md section 4).
#pragma once

#include "identity/token_source.hpp"

namespace msiproxy {

// MSI_SECRET is read from the environment on every fetch, as App Service rotates its secrets.
std::unique_ptr<token_source> make_app_service_2017_source(boost::asio::any_io_executor ex,
                                                           boost::asio::ssl::context& tls,
                                                           std::string endpoint, env_lookup env);

}  // namespace msiproxy
