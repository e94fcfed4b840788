// OpenSSL client context and per-connection verification settings.
#include "upstream/tls.hpp"

#include <stdexcept>

#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <boost/asio/ip/address.hpp>

namespace msiproxy {

boost::asio::ssl::context make_client_tls_context(const std::string& ca_file) {
    namespace ssl = boost::asio::ssl;
    ssl::context ctx(ssl::context::tls_client);
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_compression);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    ctx.set_verify_mode(ssl::verify_peer);
    ctx.set_default_verify_paths();
    if (!ca_file.empty()) {
        boost::system::error_code ec;
        ctx.load_verify_file(ca_file, ec);
        if (ec) {
            throw std::runtime_error("cannot load upstream.ca_file '" + ca_file +
                                     "': " + ec.message());
        }
    }
    return ctx;
}

bool prepare_client_tls(SSL* ssl, const std::string& host) {
    boost::system::error_code ec;
    auto addr = boost::asio::ip::make_address(host, ec);
    if (ec) {
        if (!SSL_set_tlsext_host_name(ssl, host.c_str())) return false;
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
        return SSL_set1_host(ssl, host.c_str()) == 1;
    }
    // IP literal: no SNI (RFC 6066 forbids it); match an iPAddress SAN.
    X509_VERIFY_PARAM* param = SSL_get0_param(ssl);
    return X509_VERIFY_PARAM_set1_ip_asc(param, addr.to_string().c_str()) == 1;
}

bool is_certificate_failure(SSL* ssl) {
    long r = SSL_get_verify_result(ssl);
    return r != X509_V_OK;
}

}  // namespace msiproxy
