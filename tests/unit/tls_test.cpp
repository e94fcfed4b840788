// The upstream TLS context's trust store: a hashed system certificate directory is read lazily,
// OpenSSL's defaults (SSL_CERT_FILE among them) apply where there is none, and ca_file adds to
// either. Checked by verifying test chains against the context's store, without a handshake.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <openssl/pem.h>
#include <openssl/x509.h>

#include "support/temp_dir.hpp"
#include "support/tls_certs.hpp"
#include "upstream/tls.hpp"

namespace t = msiproxy::test;

namespace {

using x509_ptr = std::unique_ptr<X509, decltype(&X509_free)>;

x509_ptr parse(const std::string& pem) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), int(pem.size())),
                                                  &BIO_free);
    return x509_ptr(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr), &X509_free);
}

// Whether `leaf_pem` chains to a trust anchor of the context's store.
bool trusted(boost::asio::ssl::context& ctx, const std::string& leaf_pem) {
    auto leaf = parse(leaf_pem);
    REQUIRE(leaf);
    std::unique_ptr<X509_STORE_CTX, decltype(&X509_STORE_CTX_free)> sc(X509_STORE_CTX_new(),
                                                                       &X509_STORE_CTX_free);
    REQUIRE(X509_STORE_CTX_init(sc.get(), SSL_CTX_get_cert_store(ctx.native_handle()), leaf.get(),
                                nullptr) == 1);
    return X509_verify_cert(sc.get()) == 1;
}

// The file name update-ca-certificates gives a CA: its subject hash, ".0".
std::string hashed_name(const std::string& ca_pem) {
    auto ca = parse(ca_pem);
    REQUIRE(ca);
    char name[16];
    std::snprintf(name, sizeof name, "%08lx.0", X509_subject_name_hash(ca.get()));
    return name;
}

// Sets SSL_CERT_DIR and SSL_CERT_FILE for one test and restores them after.
struct trust_env {
    trust_env(const std::string& dir, const std::string& file) {
        ::setenv("SSL_CERT_DIR", dir.c_str(), 1);
        if (file.empty()) {
            ::unsetenv("SSL_CERT_FILE");
        } else {
            ::setenv("SSL_CERT_FILE", file.c_str(), 1);
        }
    }
    ~trust_env() {
        ::unsetenv("SSL_CERT_DIR");
        ::unsetenv("SSL_CERT_FILE");
    }
};

}  // namespace

TEST_CASE("tls: a hashed certificate directory is the trust store", "[unit][tls]") {
    t::test_certificates certs;
    t::temp_dir dir;
    dir.write_file(hashed_name(certs.ca().cert_pem), certs.ca().cert_pem);
    trust_env env(dir.path().string(), "");

    auto ctx = msiproxy::make_client_tls_context("");
    CHECK(trusted(ctx, certs.leaf().cert_pem));
    CHECK_FALSE(trusted(ctx, certs.untrusted_leaf().cert_pem));

    // ca_file adds its anchors to the directory's.
    auto with_extra = msiproxy::make_client_tls_context(certs.untrusted_ca().cert_file);
    CHECK(trusted(with_extra, certs.leaf().cert_pem));
    CHECK(trusted(with_extra, certs.untrusted_leaf().cert_pem));
}

TEST_CASE("tls: without a hashed directory, OpenSSL's defaults and SSL_CERT_FILE apply",
          "[unit][tls]") {
    t::test_certificates certs;
    t::temp_dir dir;
    dir.write_file("not-hashed.pem", certs.ca().cert_pem);

    SECTION("an unhashed directory: the bundle SSL_CERT_FILE names") {
        trust_env env(dir.path().string(), certs.ca_file());
        auto ctx = msiproxy::make_client_tls_context("");
        CHECK(trusted(ctx, certs.leaf().cert_pem));
        CHECK_FALSE(trusted(ctx, certs.untrusted_leaf().cert_pem));
    }
    SECTION("SSL_CERT_FILE wins over a hashed directory") {
        dir.write_file(hashed_name(certs.untrusted_ca().cert_pem), certs.untrusted_ca().cert_pem);
        trust_env env(dir.path().string(), certs.ca_file());
        auto ctx = msiproxy::make_client_tls_context("");
        CHECK(trusted(ctx, certs.leaf().cert_pem));
    }
}
