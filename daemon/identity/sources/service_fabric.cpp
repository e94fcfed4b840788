// Service Fabric: GET {IDENTITY_ENDPOINT}?api-version=...&resource=... with `secret:`, over TLS
// pinned to IDENTITY_SERVER_THUMBPRINT; user-assigned selectors are refused.
#include "identity/sources/service_fabric.hpp"

#include <stdexcept>

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <boost/url/url.hpp>

#include "identity/sources/source_util.hpp"

namespace msiproxy {

namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Replaces OpenSSL's whole chain verification: the only question is whether the leaf is the
// pinned certificate. Called once per handshake with the peer's leaf.
int verify_pinned_leaf(X509_STORE_CTX* store, void* arg) {
    const auto* pin = static_cast<const sha1_thumbprint*>(arg);
    X509* leaf = X509_STORE_CTX_get0_cert(store);
    unsigned char* der = nullptr;
    int len = leaf ? i2d_X509(leaf, &der) : -1;
    bool match = false;
    if (len > 0) {
        sha1_thumbprint digest{};
        SHA1(der, static_cast<std::size_t>(len), digest.data());
        match = CRYPTO_memcmp(digest.data(), pin->data(), digest.size()) == 0;
    }
    OPENSSL_free(der);
    if (!match) {
        // Makes SSL_get_verify_result report a certificate failure (errc::tls_certificate_error).
        X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
        return 0;
    }
    X509_STORE_CTX_set_error(store, X509_V_OK);
    return 1;
}

class service_fabric_source final : public token_source {
  public:
    service_fabric_source(boost::asio::any_io_executor ex, std::string endpoint,
                          sha1_thumbprint pin, std::string api_version, env_lookup env)
        : ex_(std::move(ex)),
          endpoint_(std::move(endpoint)),
          pin_(std::make_unique<sha1_thumbprint>(pin)),
          api_version_(std::move(api_version)),
          env_(std::move(env)),
          tls_(boost::asio::ssl::context::tls_client) {
        tls_.set_options(boost::asio::ssl::context::default_workarounds |
                         boost::asio::ssl::context::no_compression);
        SSL_CTX_set_min_proto_version(tls_.native_handle(), TLS1_2_VERSION);
        tls_.set_verify_mode(boost::asio::ssl::verify_peer);
        SSL_CTX_set_cert_verify_callback(tls_.native_handle(), verify_pinned_leaf, pin_.get());
    }

    std::string_view name() const override { return "service-fabric"; }

    boost::asio::awaitable<fetch_outcome> fetch(const std::string& resource,
                                                const identity_selector& identity) override {
        if (!identity.empty()) {
            co_return unsupported_identity(
                name(), identity,
                "Service Fabric fixes an application's identity in the cluster configuration");
        }
        boost::urls::url u(endpoint_);
        u.params().set("api-version", api_version_);
        u.params().set("resource", resource);
        fetch_request req;
        req.url = std::string(u.buffer());
        req.headers = {{"secret", env_("IDENTITY_HEADER")}};
        co_return co_await fetch_token(ex_, tls_, std::move(req));
    }

  private:
    boost::asio::any_io_executor ex_;
    std::string endpoint_;
    std::unique_ptr<sha1_thumbprint> pin_;  // stable address for the verify callback
    std::string api_version_;
    env_lookup env_;
    boost::asio::ssl::context tls_;
};

}  // namespace

std::optional<sha1_thumbprint> parse_thumbprint(std::string_view text) {
    std::string hex;
    for (char c : text) {
        if (c == ':' || c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        if (hex_value(c) < 0) return std::nullopt;
        hex += c;
    }
    if (hex.size() != 40) return std::nullopt;
    sha1_thumbprint out{};
    for (std::size_t i = 0; i < out.size(); ++i) {
        out[i] = static_cast<std::uint8_t>(hex_value(hex[2 * i]) * 16 + hex_value(hex[2 * i + 1]));
    }
    return out;
}

std::unique_ptr<token_source> make_service_fabric_source(boost::asio::any_io_executor ex,
                                                         std::string endpoint,
                                                         std::string_view thumbprint,
                                                         std::string api_version, env_lookup env) {
    if (!endpoint.starts_with("https://")) {
        throw std::runtime_error("Service Fabric's IDENTITY_ENDPOINT must be https (got \"" +
                                 endpoint + "\")");
    }
    auto pin = parse_thumbprint(thumbprint);
    if (!pin) {
        throw std::runtime_error(
            "IDENTITY_SERVER_THUMBPRINT must be a SHA-1 thumbprint: 40 hex digits");
    }
    if (api_version.empty()) api_version = service_fabric_default_api_version;
    return std::make_unique<service_fabric_source>(std::move(ex), std::move(endpoint), *pin,
                                                   std::move(api_version), std::move(env));
}

}  // namespace msiproxy
