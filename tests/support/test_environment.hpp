// The usual cast of an integration test, started together: certificates, a fake IMDS, a TLS
// fake upstream (the routed API) and a plain one (an unrouted host), plus template variables.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "support/fake_identity.hpp"
#include "support/fake_upstream.hpp"
#include "support/tls_certs.hpp"

namespace msiproxy::test {

struct test_environment {
    test_certificates certs{{"api.test"}};
    fake_identity identity;
    fake_upstream upstream{{.tls = certs.leaf()}};  // https://localhost:PORT, trusted via ca_file
    fake_upstream plain;                            // http://127.0.0.1:PORT

    // {identity_url} {ca_file} {upstream_port} {plain_port} for config templates.
    std::map<std::string, std::string> vars() const;
};

// A loopback TCP port that was free a moment ago and has nothing listening (bind, then close).
std::uint16_t closed_port();

}  // namespace msiproxy::test
