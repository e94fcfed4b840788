// Azure VM / VMSS Instance Metadata Service token endpoint (azure-identity.md section 2).
#pragma once

#include "identity/token_source.hpp"

namespace msiproxy {

inline constexpr const char* imds_default_endpoint =
    "http://169.254.169.254/metadata/identity/oauth2/token";

std::unique_ptr<token_source> make_imds_source(boost::asio::any_io_executor ex,
                                               boost::asio::ssl::context& tls,
                                               std::string endpoint);

}  // namespace msiproxy
