// Forward-mode destinations the proxy refuses, decided on the resolved address: link-local
// (IMDS) always, its own listeners always, loopback and private ranges with deny_private.
#include <catch2/catch.hpp>

#include "support/proxy_fixture.hpp"
#include "support/test_client.hpp"
#include "support/test_environment.hpp"

namespace t = msiproxy::test;

namespace {

constexpr std::string_view config_template = R"(
[proxy]
deny_private = {deny_private}
[log]
level = "warn"
access = false
[identity]
source = "imds"
endpoint = "{identity_url}"
[upstream]
ca_file = "{ca_file}"
connect_timeout = "2s"
[[route]]
name = "api"
host = "api.test"
upstream = "https://localhost:{upstream_port}"
resource = "https://api.test"
)";

void check_prohibited(const boost::system::result<t::http_response>& r) {
    REQUIRE(r);
    CHECK(r->status == 403);
    REQUIRE(r->header("Proxy-Status"));
    CHECK(r->header("Proxy-Status")->find("error=destination_ip_prohibited") != std::string::npos);
}

std::string get_url(const std::string& authority) {
    return "GET http://" + authority + "/p HTTP/1.1\r\nHost: " + authority + "\r\n\r\n";
}

}  // namespace

TEST_CASE("link-local destinations and the proxy itself are refused", "[integration][ssrf]") {
    t::test_environment env;
    auto vars = env.vars();
    vars["deny_private"] = "false";
    t::proxy_fixture proxy(config_template, vars);
    // IMDS: refused before any connection is attempted.
    check_prohibited(t::http_exchange(proxy.proxy_port(), get_url("169.254.169.254")));
    check_prohibited(t::http_exchange(proxy.proxy_port(), get_url("[fe80::1]:80")));
    // A request looping back into the proxy, by address or by a name resolving to it.
    const auto self = std::to_string(proxy.proxy_port());
    check_prohibited(t::http_exchange(proxy.proxy_port(), get_url("127.0.0.1:" + self)));
    check_prohibited(t::http_exchange(proxy.proxy_port(), get_url("localhost:" + self)));
    check_prohibited(t::http_exchange(
        proxy.proxy_port(),
        "GET /nothing-routes-here HTTP/1.1\r\nHost: 127.0.0.1:" + self + "\r\n\r\n"));
    // CONNECT is held to the same rule.
    auto r = t::http_exchange(
        proxy.proxy_port(),
        "CONNECT 169.254.169.254:443 HTTP/1.1\r\nHost: 169.254.169.254:443\r\n\r\n");
    check_prohibited(r);
    // Loopback is fine by default.
    auto ok = t::http_exchange(proxy.proxy_port(),
                               get_url("127.0.0.1:" + std::to_string(env.plain.port())));
    REQUIRE(ok);
    CHECK(ok->status == 200);
}

TEST_CASE("deny_private refuses loopback and private destinations, not routes",
          "[integration][ssrf]") {
    t::test_environment env;
    auto vars = env.vars();
    vars["deny_private"] = "true";
    t::proxy_fixture proxy(config_template, vars);
    const auto plain = std::to_string(env.plain.port());
    check_prohibited(t::http_exchange(proxy.proxy_port(), get_url("127.0.0.1:" + plain)));
    check_prohibited(t::http_exchange(proxy.proxy_port(), get_url("localhost:" + plain)));
    check_prohibited(t::http_exchange(proxy.proxy_port(), get_url("10.1.2.3")));
    check_prohibited(t::http_exchange(proxy.proxy_port(), get_url("[::ffff:192.168.1.1]")));
    CHECK(env.plain.requests().size() == 0);
    // Routes are the operator's choice: a routed upstream on loopback still works.
    auto r = t::http_exchange(proxy.proxy_port(), get_url("api.test"));
    REQUIRE(r);
    CHECK(r->status == 200);
}
