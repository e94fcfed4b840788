// Azure Cloud Shell token endpoint (MSI_ENDPOINT without MSI_SECRET; azure-identity.md section
// 8). Its tokens are delegated ones for the signed-in portal user, not an application identity.
#pragma once

#include "identity/token_source.hpp"

namespace msiproxy {

std::unique_ptr<token_source> make_cloud_shell_source(boost::asio::any_io_executor ex,
                                                      boost::asio::ssl::context& tls,
                                                      std::string endpoint);

}  // namespace msiproxy
