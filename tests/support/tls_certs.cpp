// Certificate generation with the OpenSSL 3 API: EVP_EC_gen keys, X509 v3 extensions through
// X509V3_EXT_conf_nid, PEM through memory BIOs. Everything is RAII-wrapped; errors throw.
#include "support/tls_certs.hpp"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <memory>
#include <stdexcept>

namespace msiproxy::test {
namespace {

struct pkey_deleter {
    void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
};
struct x509_deleter {
    void operator()(X509* p) const { X509_free(p); }
};
struct ext_deleter {
    void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
};
struct bio_deleter {
    void operator()(BIO* p) const { BIO_free(p); }
};
using pkey_ptr = std::unique_ptr<EVP_PKEY, pkey_deleter>;
using x509_ptr = std::unique_ptr<X509, x509_deleter>;
using ext_ptr = std::unique_ptr<X509_EXTENSION, ext_deleter>;
using bio_ptr = std::unique_ptr<BIO, bio_deleter>;

[[noreturn]] void fail(const std::string& what) {
    char buf[256] = {};
    ERR_error_string_n(ERR_get_error(), buf, sizeof buf);
    throw std::runtime_error("test certificate: " + what + ": " + buf);
}

void check(int rc, const char* what) {
    if (rc != 1) fail(what);
}

pkey_ptr make_key() {
    pkey_ptr key(EVP_EC_gen("P-256"));
    if (!key) fail("EVP_EC_gen");
    return key;
}

struct issuer {
    X509* cert;  // nullptr: self-signed
    EVP_PKEY* key;
};

x509_ptr make_cert(EVP_PKEY* subject_key, const std::string& common_name, bool is_ca,
                   const std::string& san, const issuer& by) {
    x509_ptr cert(X509_new());
    if (!cert) fail("X509_new");
    check(X509_set_version(cert.get(), 2), "X509_set_version");  // 2 means v3

    // Random positive serial, so two runs never produce the same issuer+serial pair.
    unsigned char serial_bytes[16];
    check(RAND_bytes(serial_bytes, sizeof serial_bytes), "RAND_bytes");
    serial_bytes[0] &= 0x7f;
    BIGNUM* bn = BN_bin2bn(serial_bytes, sizeof serial_bytes, nullptr);
    if (!bn || !BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(cert.get()))) {
        BN_free(bn);
        fail("serial");
    }
    BN_free(bn);

    // Backdated an hour so clock skew between the test and OpenSSL's check does not matter.
    if (!X509_gmtime_adj(X509_getm_notBefore(cert.get()), -3600)) fail("notBefore");
    if (!X509_gmtime_adj(X509_getm_notAfter(cert.get()), 7L * 24 * 3600)) fail("notAfter");

    X509_NAME* name = X509_get_subject_name(cert.get());
    check(X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>("msiproxy tests"), -1,
                                     -1, 0),
          "subject O");
    check(X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                     reinterpret_cast<const unsigned char*>(common_name.c_str()),
                                     -1, -1, 0),
          "subject CN");
    X509* issuer_cert = by.cert ? by.cert : cert.get();
    check(X509_set_issuer_name(cert.get(), X509_get_subject_name(issuer_cert)), "issuer");
    check(X509_set_pubkey(cert.get(), subject_key), "X509_set_pubkey");

    X509V3_CTX ctx;
    X509V3_set_ctx_nodb(&ctx);
    X509V3_set_ctx(&ctx, issuer_cert, cert.get(), nullptr, nullptr, 0);
    auto add = [&](int nid, const std::string& value) {
        ext_ptr ext(X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str()));
        if (!ext) fail("extension " + value);
        check(X509_add_ext(cert.get(), ext.get(), -1), "X509_add_ext");
    };
    if (is_ca) {
        add(NID_basic_constraints, "critical,CA:TRUE");
        add(NID_key_usage, "critical,keyCertSign,cRLSign");
    } else {
        add(NID_basic_constraints, "critical,CA:FALSE");
        add(NID_key_usage, "critical,digitalSignature,keyEncipherment");
        add(NID_ext_key_usage, "serverAuth,clientAuth");
        add(NID_subject_alt_name, san);
    }
    add(NID_subject_key_identifier, "hash");
    if (by.cert) add(NID_authority_key_identifier, "keyid:always");

    if (X509_sign(cert.get(), by.key, EVP_sha256()) <= 0) fail("X509_sign");
    return cert;
}

std::string bio_string(BIO* bio) {
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio, &data);
    return std::string(data, static_cast<std::size_t>(n));
}

std::string cert_pem(X509* cert) {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio || PEM_write_bio_X509(bio.get(), cert) != 1) fail("PEM_write_bio_X509");
    return bio_string(bio.get());
}

std::string key_pem(EVP_PKEY* key) {
    bio_ptr bio(BIO_new(BIO_s_mem()));
    if (!bio ||
        PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1)
        fail("PEM_write_bio_PrivateKey");
    return bio_string(bio.get());
}

// A CA and a leaf it signed, written as <prefix>-ca.pem / <prefix>-leaf.pem (+ keys).
void make_chain(const temp_dir& dir, const std::string& prefix, const std::string& san,
                pem_pair& ca_out, pem_pair& leaf_out) {
    pkey_ptr ca_key = make_key();
    x509_ptr ca = make_cert(ca_key.get(), "msiproxy " + prefix + " CA", true, "",
                            issuer{nullptr, ca_key.get()});
    pkey_ptr leaf_key = make_key();
    x509_ptr leaf =
        make_cert(leaf_key.get(), "localhost", false, san, issuer{ca.get(), ca_key.get()});

    ca_out.cert_pem = cert_pem(ca.get());
    ca_out.key_pem = key_pem(ca_key.get());
    leaf_out.cert_pem = cert_pem(leaf.get());
    leaf_out.key_pem = key_pem(leaf_key.get());
    ca_out.cert_file = dir.write_file(prefix + "-ca.pem", ca_out.cert_pem);
    ca_out.key_file = dir.write_file(prefix + "-ca-key.pem", ca_out.key_pem);
    leaf_out.cert_file = dir.write_file(prefix + "-leaf.pem", leaf_out.cert_pem);
    leaf_out.key_file = dir.write_file(prefix + "-leaf-key.pem", leaf_out.key_pem);
}

}  // namespace

test_certificates::test_certificates(const std::vector<std::string>& extra_dns_names) {
    std::string san = "DNS:localhost,IP:127.0.0.1";
    for (const auto& name : extra_dns_names)
        san += ",DNS:" + name;
    make_chain(dir_, "trusted", san, ca_, leaf_);
    make_chain(dir_, "untrusted", san, untrusted_ca_, untrusted_leaf_);
}

boost::asio::ssl::context make_server_context(const pem_pair& identity) {
    namespace ssl = boost::asio::ssl;
    ssl::context ctx(ssl::context::tls_server);
    ctx.set_options(ssl::context::default_workarounds | ssl::context::no_sslv2 |
                    ssl::context::no_sslv3 | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
    ctx.use_certificate_chain(boost::asio::buffer(identity.cert_pem));
    ctx.use_private_key(boost::asio::buffer(identity.key_pem), ssl::context::pem);
    return ctx;
}

boost::asio::ssl::context make_client_context(const std::string& ca_pem) {
    namespace ssl = boost::asio::ssl;
    ssl::context ctx(ssl::context::tls_client);
    ctx.add_certificate_authority(boost::asio::buffer(ca_pem));
    ctx.set_verify_mode(ssl::verify_peer);
    return ctx;
}

}  // namespace msiproxy::test
