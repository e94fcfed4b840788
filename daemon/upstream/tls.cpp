// OpenSSL client context and per-connection verification settings.
#include "upstream/tls.hpp"

#include "upstream/tls_stream.hpp"

#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string_view>

#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <boost/asio/ip/address.hpp>

namespace msiproxy {

namespace {

// A directory of certificates named by subject hash ("5ad8a5d6.0", made by c_rehash or
// update-ca-certificates): OpenSSL can then read only the CAs a handshake needs, when it needs
// them, instead of parsing the whole bundle at start.
bool is_hashed_cert_dir(const char* dir) {
    std::error_code ec;
    for (std::filesystem::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
        const std::filesystem::path file = it->path().filename();  // name below points into it
        std::string_view name = file.native();
        if (name.size() == 10 && name[8] == '.' && name[9] >= '0' && name[9] <= '9' &&
            name.find_first_not_of("0123456789abcdef") == 8) {
            return true;
        }
    }
    return false;
}

// The system trust store. Where the default certificate directory is hashed (Debian, Ubuntu,
// Alpine) and SSL_CERT_FILE does not name a bundle, only the directory is used, read lazily:
// start-up skips parsing ~150 certificates and idle memory holds only the CAs in use. Elsewhere
// (RHEL ships a bundle file), OpenSSL's defaults, file and directory.
void use_system_trust_store(boost::asio::ssl::context& ctx) {
    const char* dir = std::getenv(X509_get_default_cert_dir_env());
    if (!dir || !*dir) dir = X509_get_default_cert_dir();
    const char* file = std::getenv(X509_get_default_cert_file_env());
    if ((!file || !*file) && is_hashed_cert_dir(dir) &&
        SSL_CTX_load_verify_dir(ctx.native_handle(), dir) == 1) {
        return;
    }
    ctx.set_default_verify_paths();
}

}  // namespace

boost::asio::ssl::context make_client_tls_context(const std::string& ca_file) {
    namespace ssl = boost::asio::ssl;
    ssl::context ctx(ssl::context::tls_client);
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_compression);
    SSL_CTX_set_min_proto_version(ctx.native_handle(), TLS1_2_VERSION);
    ctx.set_verify_mode(ssl::verify_peer);
    use_system_trust_store(ctx);
    enable_session_resumption(ctx.native_handle());
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
