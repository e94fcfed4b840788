// TLS client settings for upstreams and identity endpoints: TLS 1.2+, peer verification against
// the system store plus [upstream] ca_file, SNI and host name checks per connection.
#pragma once

#include <string>

#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

namespace msiproxy {

// Throws std::runtime_error naming the file when ca_file cannot be loaded.
boost::asio::ssl::context make_client_tls_context(const std::string& ca_file);

// Sets SNI (names only, not IP literals) and the name or IP the certificate must match.
// Returns false if OpenSSL refused the settings.
bool prepare_client_tls(SSL* ssl, const std::string& host);

// After a failed handshake: true when the failure is about the peer's certificate.
bool is_certificate_failure(SSL* ssl);

}  // namespace msiproxy
