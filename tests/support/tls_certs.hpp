// Certificates made at test time: a trusted CA with a localhost leaf, and an unrelated
// "untrusted" CA with its own leaf, as PEM strings and as files in a temp_dir.
#pragma once

#include <string>
#include <vector>

#include <boost/asio/ssl/context.hpp>

#include "support/temp_dir.hpp"

namespace msiproxy::test {

// One certificate and its private key, PEM encoded, and where they were written.
struct pem_pair {
    std::string cert_pem;
    std::string key_pem;
    std::string cert_file;
    std::string key_file;
};

// Generates fresh EC P-256 keys and X.509 v3 certificates (OpenSSL 3, in memory; a few ms).
// Leaves carry SANs DNS:localhost, IP:127.0.0.1 and the extra DNS names given, are valid from
// an hour ago for a week, and have serverAuth extended key usage.
// Throws std::runtime_error when OpenSSL fails. Files live until the object is destroyed.
class test_certificates {
  public:
    explicit test_certificates(const std::vector<std::string>& extra_dns_names = {});

    const pem_pair& ca() const { return ca_; }      // trusted root
    const pem_pair& leaf() const { return leaf_; }  // signed by ca()
    const pem_pair& untrusted_ca() const { return untrusted_ca_; }
    const pem_pair& untrusted_leaf() const { return untrusted_leaf_; }  // signed by untrusted_ca()

    const std::string& ca_file() const { return ca_.cert_file; }
    const temp_dir& dir() const { return dir_; }

  private:
    temp_dir dir_;
    pem_pair ca_;
    pem_pair leaf_;
    pem_pair untrusted_ca_;
    pem_pair untrusted_leaf_;
};

// A TLS server context (TLS 1.2+) presenting `identity` (leaf certificate and key).
boost::asio::ssl::context make_server_context(const pem_pair& identity);

// A TLS client context that trusts only `ca_pem` and verifies the peer (tests' own clients).
boost::asio::ssl::context make_client_context(const std::string& ca_pem);

}  // namespace msiproxy::test
