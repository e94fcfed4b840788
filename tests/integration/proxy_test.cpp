// Issue 2 end to end, in-process: the real msiproxy::app between the blocking test client and
// the fakes (TLS upstream, plain upstream, fake IMDS), all on 127.0.0.1 with ephemeral ports.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cctype>

#include <nlohmann/json.hpp>

#include "support/byte_pattern.hpp"
#include "support/captured_log.hpp"
#include "support/process_memory.hpp"
#include "support/proxy_fixture.hpp"
#include "support/raw_socket.hpp"
#include "support/test_client.hpp"
#include "support/test_environment.hpp"

namespace t = msiproxy::test;
using t::header_list;

namespace {

// Routes: "api" (forward-proxy mode, exact host), "keep" (same upstream, the app's own
// Authorization kept), then {extra_routes} ("svc", the local base URL route, by default).
constexpr std::string_view config_template = R"(
[proxy]
unmatched = "{unmatched}"
tunnel = {tunnel}

[log]
level = "warn"
access = false

[identity]
source = "imds"
endpoint = "{identity_url}"

[upstream]
ca_file = "{ca_file}"
connect_timeout = "5s"
response_timeout = "{response_timeout}"

[[route]]
name = "api"
host = "api.test"
upstream = "https://localhost:{upstream_port}/base"
resource = "https://api.test"

[[route]]
name = "keep"
host = "keep.test"
upstream = "https://localhost:{upstream_port}/base"
resource = "https://api.test"
client_authorization = "keep"

{extra_routes}
)";

// Matches any host, so CONNECT tests (which need "no route matches") leave it out.
constexpr std::string_view svc_route = R"(
[[route]]
name = "svc"
path_prefix = "/svc"
strip_prefix = true
upstream = "https://localhost:{upstream_port}/base"
resource = "https://svc.test"
)";

std::map<std::string, std::string> vars_for(const t::test_environment& env,
                                            std::map<std::string, std::string> overrides = {}) {
    auto vars = env.vars();
    vars["unmatched"] = "forward";
    vars["tunnel"] = "true";
    vars["response_timeout"] = "10s";
    vars["extra_routes"] = t::substitute(svc_route, vars);
    for (auto& [k, v] : overrides)
        vars[k] = v;
    // Extra routes may use the same placeholders as the template.
    vars["extra_routes"] = t::substitute(vars["extra_routes"], vars);
    return vars;
}

std::string lower(std::string s) {
    std::transform(s.begin(), s.end(), s.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return s;
}

bool contains(const std::optional<std::string>& haystack, std::string_view needle) {
    return haystack && haystack->find(needle) != std::string::npos;
}

// Every error msiproxy produces itself: status, Proxy-Status naming the error type, a JSON body
// {"error","message","route"}, and no token anywhere in it.
void check_proxy_error(const t::http_response& r, unsigned status, std::string_view error,
                       const t::fake_identity& identity) {
    INFO("status " << r.status << " body " << r.body);
    CHECK(r.status == status);
    const auto proxy_status = r.header("Proxy-Status");
    REQUIRE(proxy_status);
    CHECK(proxy_status->find("msiproxy") != std::string::npos);
    CHECK(proxy_status->find("error=" + std::string(error)) != std::string::npos);
    const auto body = nlohmann::json::parse(r.body, nullptr, false);
    REQUIRE_FALSE(body.is_discarded());
    REQUIRE(body.is_object());
    CHECK(body.contains("error"));
    CHECK(body.contains("message"));
    CHECK(body.contains("route"));
    CHECK(body.value("error", "") == error);
    for (const auto& token : identity.issued_tokens()) {
        CHECK(r.body.find(token) == std::string::npos);
        for (const auto& [k, v] : r.headers)
            CHECK(v.find(token) == std::string::npos);
    }
}

std::string bearer(const t::fake_identity& identity, const std::string& resource) {
    const auto token = identity.token_for(resource);
    REQUIRE(token);
    return "Bearer " + *token;
}

}  // namespace

TEST_CASE("forward-proxy request reaches the upstream with the token", "[integration]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, vars_for(env));

    auto r = t::http_exchange(proxy.proxy_port(), t::proxy_request("GET", "http://api.test/x?q=1"));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "ok");

    REQUIRE(env.upstream.wait_for_requests(1));
    const auto req = env.upstream.requests().all().at(0);
    CHECK(req.method == "GET");
    CHECK(req.target == "/base/x?q=1");
    CHECK(req.header("Host") == "localhost:" + std::to_string(env.upstream.port()));
    CHECK(t::count_header(req.headers, "Authorization") == 1);
    CHECK(req.header("Authorization") == bearer(env.identity, "https://api.test"));

    // The token request had the shape IMDS wants.
    REQUIRE(env.identity.wait_for_requests(1));
    bool asked_for_api = false;
    for (const auto& id_req : env.identity.requests().all()) {
        CHECK(id_req.header("Metadata") == "true");
        CHECK(id_req.query.count("api-version") == 1);
        if (id_req.query.count("resource") && id_req.query.at("resource") == "https://api.test")
            asked_for_api = true;
    }
    CHECK(asked_for_api);
}

TEST_CASE("base-URL request is matched by path prefix and the prefix stripped", "[integration]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, vars_for(env));
    const std::string self = "127.0.0.1:" + std::to_string(proxy.proxy_port());

    auto r = t::http_exchange(proxy.proxy_port(), t::origin_request("GET", "/svc/x", self));
    REQUIRE(r);
    CHECK(r->status == 200);

    REQUIRE(env.upstream.wait_for_requests(1));
    const auto req = env.upstream.requests().all().at(0);
    CHECK(req.target == "/base/x");
    CHECK(req.header("Host") == "localhost:" + std::to_string(env.upstream.port()));
    CHECK(req.header("Authorization") == bearer(env.identity, "https://svc.test"));
}

TEST_CASE("unmatched requests: forward without a token, or deny", "[integration]") {
    t::test_environment env;
    const std::string plain_url = "http://127.0.0.1:" + std::to_string(env.plain.port()) + "/p";

    SECTION("unmatched = forward passes the app's headers through, adds no token") {
        t::proxy_fixture proxy(config_template, vars_for(env));
        t::client_connection c(proxy.proxy_port());
        auto r = c.request(t::proxy_request("GET", plain_url, {{"X-App", "1"}}));
        REQUIRE(r);
        CHECK(r->status == 200);
        r = c.request(t::proxy_request("GET", plain_url, {{"Authorization", "Basic YXBwOnB3"}}));
        REQUIRE(r);
        CHECK(r->status == 200);

        REQUIRE(env.plain.wait_for_requests(2));
        const auto reqs = env.plain.requests().all();
        CHECK(reqs[0].target == "/p");
        CHECK(reqs[0].header("Host") == "127.0.0.1:" + std::to_string(env.plain.port()));
        CHECK(reqs[0].header("X-App") == "1");
        CHECK_FALSE(reqs[0].has_header("Authorization"));
        // Decision: an unmatched forward is a plain forward proxy; the app's own end-to-end
        // Authorization is passed through untouched (only hop-by-hop headers go).
        CHECK(t::count_header(reqs[1].headers, "Authorization") == 1);
        CHECK(reqs[1].header("Authorization") == "Basic YXBwOnB3");
        CHECK(env.upstream.requests().size() == 0);
    }
    SECTION("unmatched = deny answers 403 and forwards nothing") {
        t::proxy_fixture proxy(config_template, vars_for(env, {{"unmatched", "deny"}}));
        auto r = t::http_exchange(proxy.proxy_port(), t::proxy_request("GET", plain_url));
        REQUIRE(r);
        check_proxy_error(*r, 403, "http_request_denied", env.identity);
        CHECK(env.plain.requests().size() == 0);
        CHECK(env.plain.connections_accepted() == 0);
    }
}

TEST_CASE("hop-by-hop headers are removed and the app's Authorization handled per route",
          "[integration]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, vars_for(env));
    const header_list hop_by_hop{
        {"Connection", "keep-alive, X-Foo"},
        {"X-Foo", "bar"},
        {"Keep-Alive", "timeout=5"},
        {"TE", "trailers"},
        {"Proxy-Authorization", "Basic cHJveHk6c2VjcmV0"},
        {"Proxy-Connection", "keep-alive"},
        {"X-End-To-End", "yes"},
        {"Authorization", "Bearer app-own"},
    };
    t::client_connection c(proxy.proxy_port());
    auto r = c.request(t::proxy_request("GET", "http://api.test/h", hop_by_hop));
    REQUIRE(r);
    CHECK(r->status == 200);
    r = c.request(t::proxy_request("GET", "http://keep.test/k1", hop_by_hop));
    REQUIRE(r);
    CHECK(r->status == 200);
    r = c.request(t::proxy_request("GET", "http://keep.test/k2"));
    REQUIRE(r);
    CHECK(r->status == 200);

    REQUIRE(env.upstream.wait_for_requests(3));
    const auto reqs = env.upstream.requests().all();
    for (std::size_t i = 0; i < 2; ++i) {
        INFO("request " << reqs[i].target);
        CHECK_FALSE(reqs[i].has_header("X-Foo"));
        CHECK_FALSE(reqs[i].has_header("Keep-Alive"));
        CHECK_FALSE(reqs[i].has_header("TE"));
        CHECK_FALSE(reqs[i].has_header("Proxy-Authorization"));
        CHECK_FALSE(reqs[i].has_header("Proxy-Connection"));
        // The proxy may send its own Connection header upstream, but not the app's tokens.
        if (auto conn = reqs[i].header("Connection"))
            CHECK(lower(*conn).find("x-foo") == std::string::npos);
        CHECK(reqs[i].header("X-End-To-End") == "yes");
        CHECK(t::count_header(reqs[i].headers, "Authorization") == 1);
    }
    const std::string token = bearer(env.identity, "https://api.test");
    CHECK(reqs[0].target == "/base/h");
    CHECK(reqs[0].header("Authorization") == token);             // replace (default)
    CHECK(reqs[1].header("Authorization") == "Bearer app-own");  // keep, app sent one
    CHECK(reqs[2].header("Authorization") == token);             // keep, app sent none
}

TEST_CASE("keep-alive downstream and pooled upstream connections", "[integration]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, vars_for(env));
    t::client_connection c(proxy.proxy_port());
    for (int i = 0; i < 4; ++i) {
        auto r = c.request(t::proxy_request("GET", "http://api.test/ka/" + std::to_string(i)));
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->keep_alive);
    }
    REQUIRE(env.upstream.wait_for_requests(4));
    const auto reqs = env.upstream.requests().all();
    for (const auto& req : reqs)
        CHECK(req.connection_id == reqs[0].connection_id);
    CHECK(env.upstream.connections_accepted() == 1);
    CHECK(env.upstream.tls_handshakes() == 1);
}

TEST_CASE("a new upstream connection resumes the TLS session of an earlier one", "[integration]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, vars_for(env));
    auto get = [&](t::header_list headers) {
        auto r = t::http_exchange(proxy.proxy_port(),
                                  t::proxy_request("GET", "http://api.test/resume", headers));
        REQUIRE(r);
        CHECK(r->status == 200);
    };
    get({});                       // a full handshake; the server's session ticket is kept
    get({{"x-fake-close", "1"}});  // the upstream closes the pooled connection after this one
    get({});                       // so this one needs a new connection: resumed
    CHECK(env.upstream.tls_handshakes() == 2);
    CHECK(env.upstream.tls_resumptions() == 1);
    // TLS 1.3 tickets are used once each; the resumed connection brought fresh ones.
    get({{"x-fake-close", "1"}});
    get({});
    CHECK(env.upstream.tls_handshakes() == 3);
    CHECK(env.upstream.tls_resumptions() == 2);
}

TEST_CASE("256 MiB up and down stream through the proxy with bounded memory", "[integration]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, vars_for(env));
    const std::uint64_t n = 256ull * 1024 * 1024;
    const std::uint64_t expected_sum = t::pattern_checksum(n);
    const t::read_options slow{.timeout = std::chrono::seconds(60)};
    t::client_connection c(proxy.proxy_port(), std::chrono::seconds(60));

    // Warm up (token fetched, upstream connection pooled) so the measurement sees transfers only.
    auto r = c.request(t::proxy_request("GET", "http://api.test/warm"));
    REQUIRE(r);
    REQUIRE(r->status == 200);

    const bool reset = t::reset_peak_rss();
    const auto baseline = t::current_rss_bytes();
    REQUIRE(baseline);

    r = c.upload({.method = "PUT", .target = "http://api.test/big", .bytes = n, .response = slow});
    REQUIRE(r);
    CHECK(r->status == 200);
    REQUIRE(env.upstream.wait_for_requests(2));
    const auto up = env.upstream.requests().all().at(1);
    CHECK(up.body_complete);
    CHECK(up.body_bytes == n);
    CHECK(up.body_checksum == expected_sum);

    t::read_options count_only = slow;
    count_only.keep_body = false;
    r = c.request(
        t::proxy_request("GET", "http://api.test/big", {{"x-fake-body-bytes", std::to_string(n)}}),
        count_only);
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body_bytes == n);
    CHECK(r->body_checksum == expected_sum);

    const auto peak = t::peak_rss_bytes();
    REQUIRE(peak);
    INFO("peak RSS reset: " << reset << ", baseline " << *baseline << ", peak " << *peak);
    if (t::rss_reflects_buffering()) {
        CHECK(*peak - std::min(*peak, *baseline) < 64ull * 1024 * 1024);
    } else {
        WARN("AddressSanitizer build: the RSS bound is checked in the plain build only");
    }
}

TEST_CASE("chunked upload with Expect: 100-continue arrives complete", "[integration]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, vars_for(env));
    t::client_connection c(proxy.proxy_port());
    const std::uint64_t n = 3ull * 1024 * 1024 + 5;
    // upload() sends the body only after reading the 100 Continue.
    auto r = c.upload({.target = "http://api.test/chunked",
                       .bytes = n,
                       .chunked = true,
                       .expect_continue = true,
                       .piece = 50000});
    REQUIRE(r);
    CHECK(r->status == 200);
    REQUIRE(env.upstream.wait_for_requests(1));
    const auto req = env.upstream.requests().all().at(0);
    CHECK(req.target == "/base/chunked");
    CHECK(req.body_complete);
    CHECK(req.body_bytes == n);
    CHECK(req.body_checksum == t::pattern_checksum(n));
}

TEST_CASE("HEAD, 204, 304 and chunked responses keep their framing", "[integration]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, vars_for(env));
    t::client_connection c(proxy.proxy_port());

    auto r =
        c.request(t::proxy_request("HEAD", "http://api.test/h", {{"x-fake-body-bytes", "1000"}}),
                  {.skip_body = true});
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->header("Content-Length") == "1000");
    r = c.request(t::proxy_request("GET", "http://api.test/n", {{"x-fake-status", "204"}}));
    REQUIRE(r);
    CHECK(r->status == 204);
    CHECK(r->body_bytes == 0);
    r = c.request(t::proxy_request("GET", "http://api.test/n", {{"x-fake-status", "304"}}));
    REQUIRE(r);
    CHECK(r->status == 304);
    CHECK(r->body_bytes == 0);
    r = c.request(t::proxy_request("GET", "http://api.test/c",
                                   {{"x-fake-chunked", "1"}, {"x-fake-body-bytes", "300001"}}));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body_bytes == 300001);
    CHECK(r->body_checksum == t::pattern_checksum(300001));
    // Had any of the above leaked body bytes, this response would be misparsed.
    r = c.request(t::proxy_request("GET", "http://api.test/last"));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body == "ok");
    CHECK(env.upstream.wait_for_requests(5));
}

TEST_CASE("request smuggling probes are rejected with 400 and close", "[integration]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, vars_for(env));
    struct probe {
        const char* name;
        std::string raw;
    };
    const std::string head = "POST http://api.test/s HTTP/1.1\r\nHost: api.test\r\n";
    const std::vector<probe> probes{
        {"Content-Length and Transfer-Encoding",
         head + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"},
        {"two differing Content-Length",
         head + "Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!"},
        {"whitespace before a colon", "GET http://api.test/s HTTP/1.1\r\nHost : api.test\r\n\r\n"},
        {"Transfer-Encoding not ending in chunked", head + "Transfer-Encoding: gzip\r\n\r\nhello"},
        {"obs-fold continuation line",
         "GET http://api.test/s HTTP/1.1\r\nHost: api.test\r\nX-Folded: a\r\n b\r\n\r\n"},
    };
    for (const auto& p : probes) {
        INFO(p.name);
        t::client_connection c(proxy.proxy_port());
        auto r = c.request(p.raw);
        REQUIRE(r);
        check_proxy_error(*r, 400, "http_request_error", env.identity);
        CHECK(c.wait_closed());
    }
    CHECK(env.upstream.requests().size() == 0);

    // A bad chunk size sits in the body, which a streaming proxy may see only after it has
    // sent the head upstream; what must hold is the 400 + close and that no complete request
    // reached the upstream.
    {
        INFO("bad chunk size");
        t::client_connection c(proxy.proxy_port());
        auto r = c.request(head + "Transfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n");
        REQUIRE(r);
        check_proxy_error(*r, 400, "http_request_error", env.identity);
        CHECK(c.wait_closed());
    }
    for (const auto& req : env.upstream.requests().all())
        CHECK_FALSE(req.body_complete);
}

TEST_CASE("upstream failures map to 502 and 504", "[integration]") {
    t::test_environment env;
    t::fake_upstream untrusted({.tls = env.certs.untrusted_leaf()});
    const std::string extra = std::string(svc_route) + R"(
[[route]]
name = "untrusted"
host = "untrusted.test"
upstream = "https://localhost:{untrusted_port}"
resource = "https://api.test"

[[route]]
name = "closed"
host = "closed.test"
upstream = "https://localhost:{closed_port}"
resource = "https://api.test"
)";
    auto vars = vars_for(env, {{"extra_routes", extra},
                               {"untrusted_port", std::to_string(untrusted.port())},
                               {"closed_port", std::to_string(t::closed_port())},
                               {"response_timeout", "300ms"}});

    t::proxy_fixture proxy(config_template, vars);

    SECTION("certificate from an untrusted CA -> 502 tls_certificate_error") {
        auto r = t::http_exchange(proxy.proxy_port(),
                                  t::proxy_request("GET", "http://untrusted.test/x"));
        REQUIRE(r);
        check_proxy_error(*r, 502, "tls_certificate_error", env.identity);
        CHECK(untrusted.requests().size() == 0);
        CHECK(untrusted.tls_handshakes() == 0);
    }
    SECTION("closed port -> 502 connection_refused") {
        auto r =
            t::http_exchange(proxy.proxy_port(), t::proxy_request("GET", "http://closed.test/x"));
        REQUIRE(r);
        check_proxy_error(*r, 502, "connection_refused", env.identity);
    }
    SECTION("slow upstream -> 504 http_response_timeout") {
        auto r = t::http_exchange(
            proxy.proxy_port(),
            t::proxy_request("GET", "http://api.test/slow", {{"x-fake-delay-ms", "5000"}}));
        REQUIRE(r);
        check_proxy_error(*r, 504, "http_response_timeout", env.identity);
        const auto body = nlohmann::json::parse(r->body);
        CHECK(body["route"] == "api");
        // The token was fetched and sent upstream, yet the error body must not carry it.
        REQUIRE(env.upstream.wait_for_requests(1));
        CHECK(r->body.find(bearer(env.identity, "https://api.test").substr(7)) ==
              std::string::npos);
    }
}

TEST_CASE("no token can be had -> 503 with Retry-After and nothing forwarded", "[integration]") {
    t::test_environment env;

    SECTION("identity endpoint answers 500") {
        env.identity.fail_with(500, R"({"error":"unknown","error_description":"boom"})");
        t::proxy_fixture proxy(config_template, vars_for(env));
        auto r = t::http_exchange(proxy.proxy_port(), t::proxy_request("GET", "http://api.test/x"),
                                  {.timeout = std::chrono::seconds(60)});
        REQUIRE(r);
        check_proxy_error(*r, 503, "proxy_internal_error", env.identity);
        CHECK(r->has_header("Retry-After"));
        CHECK(env.identity.request_count() >= 1);
    }
    SECTION("identity endpoint unreachable") {
        auto vars = vars_for(env);
        vars["identity_url"] = "http://127.0.0.1:" + std::to_string(t::closed_port()) +
                               "/metadata/identity/oauth2/token";
        t::proxy_fixture proxy(config_template, vars);
        auto r = t::http_exchange(proxy.proxy_port(), t::proxy_request("GET", "http://api.test/x"),
                                  {.timeout = std::chrono::seconds(60)});
        REQUIRE(r);
        check_proxy_error(*r, 503, "proxy_internal_error", env.identity);
        CHECK(r->has_header("Retry-After"));
    }
    CHECK(env.upstream.requests().size() == 0);
    CHECK(env.upstream.connections_accepted() == 0);
}

TEST_CASE("CONNECT tunnels only to hosts no route matches", "[integration]") {
    t::test_environment env;
    const std::string plain_authority = "127.0.0.1:" + std::to_string(env.plain.port());
    const std::string connect_plain =
        "CONNECT " + plain_authority + " HTTP/1.1\r\nHost: " + plain_authority + "\r\n\r\n";
    const t::read_options no_body{.skip_body = true};

    SECTION("tunnel = true: bytes flow to an unrouted host, no token") {
        t::proxy_fixture proxy(config_template, vars_for(env, {{"extra_routes", ""}}));
        t::client_connection c(proxy.proxy_port());
        auto r = c.request(connect_plain, no_body);
        REQUIRE(r);
        REQUIRE(r->status == 200);
        // From here on the connection is a byte pipe to the plain fake.
        r = c.request(t::origin_request("GET", "/tunneled", plain_authority));
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->body == "ok");
        REQUIRE(env.plain.wait_for_requests(1));
        const auto req = env.plain.requests().all().at(0);
        CHECK(req.target == "/tunneled");
        CHECK_FALSE(req.has_header("Authorization"));
    }
    SECTION("CONNECT to a routed host -> 403 telling the operator to use http://") {
        t::proxy_fixture proxy(config_template, vars_for(env, {{"extra_routes", ""}}));
        // A refused CONNECT has an ordinary body (only a 2xx answer to CONNECT has none).
        auto r = t::http_exchange(proxy.proxy_port(),
                                  "CONNECT api.test:443 HTTP/1.1\r\nHost: api.test:443\r\n\r\n");
        REQUIRE(r);
        CHECK(r->status == 403);
        CHECK(contains(r->header("Proxy-Status"), "msiproxy"));
        const auto body = nlohmann::json::parse(r->body, nullptr, false);
        REQUIRE(body.is_object());
        CHECK(body.contains("error"));
        CHECK(body.value("message", "").find("http://") != std::string::npos);
        CHECK(env.upstream.connections_accepted() == 0);
    }
    SECTION("tunnel = false -> 403") {
        t::proxy_fixture proxy(config_template,
                               vars_for(env, {{"extra_routes", ""}, {"tunnel", "false"}}));
        auto r = t::http_exchange(proxy.proxy_port(), connect_plain);
        REQUIRE(r);
        CHECK(r->status == 403);
        CHECK(contains(r->header("Proxy-Status"), "msiproxy"));
        CHECK(env.plain.connections_accepted() == 0);
    }
}

TEST_CASE("a forwarded request keeps the client's Connection: close and HTTP/1.0",
          "[integration]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, vars_for(env));
    // The upstream is asked for keep-alive HTTP/1.1; the client's answer must follow what the
    // client asked for, not the rewritten head.
    SECTION("HTTP/1.1 with Connection: close: answered with close, then closed") {
        t::raw_socket s(proxy.proxy_port());
        REQUIRE(s.send(t::proxy_request("GET", "http://api.test/c", {{"Connection", "close"}})));
        const auto got = s.read_until_closed(std::chrono::seconds(10));
        INFO(got.bytes);
        CHECK(got.closed);
        CHECK(got.bytes.rfind("HTTP/1.1 200", 0) == 0);
        CHECK(lower(got.bytes).find("\r\nconnection: close\r\n") != std::string::npos);
    }
    SECTION("HTTP/1.0: a chunked upstream body is sent close-delimited, then closed") {
        t::raw_socket s(proxy.proxy_port());
        REQUIRE(
            s.send("GET http://api.test/c HTTP/1.0\r\nHost: api.test\r\n"
                   "x-fake-chunked: 1\r\nx-fake-body-bytes: 100\r\n\r\n"));
        const auto got = s.read_until_closed(std::chrono::seconds(10));
        INFO(got.bytes);
        CHECK(got.closed);
        CHECK(got.bytes.rfind("HTTP/1.0 200", 0) == 0);
        CHECK(lower(got.bytes).find("transfer-encoding") == std::string::npos);
        const auto head_end = got.bytes.find("\r\n\r\n");
        REQUIRE(head_end != std::string::npos);
        CHECK(got.bytes.size() - head_end - 4 == 100);
    }
}

TEST_CASE("the proxy's own answers follow the client's Connection and are logged with their size",
          "[integration]") {
    t::test_environment env;
    t::captured_log log;
    std::string tmpl(config_template);
    tmpl.replace(tmpl.find("access = false"), 14, "access = true");
    {
        t::proxy_fixture proxy(tmpl, vars_for(env, {{"unmatched", "deny"}}));
        t::raw_socket s(proxy.proxy_port());
        REQUIRE(
            s.send(t::proxy_request("GET", "http://elsewhere.test/x", {{"Connection", "close"}})));
        const auto got = s.read_until_closed(std::chrono::seconds(10));
        INFO(got.bytes);
        CHECK(got.closed);
        CHECK(got.bytes.rfind("HTTP/1.1 403", 0) == 0);
        CHECK(lower(got.bytes).find("\r\nconnection: close\r\n") != std::string::npos);
        const auto head_end = got.bytes.find("\r\n\r\n");
        REQUIRE(head_end != std::string::npos);
        const auto body_bytes = got.bytes.size() - head_end - 4;
        CHECK(body_bytes > 0);
        // The access line counts the error body as bytes sent to the client.
        const auto text = log.text();
        INFO(text);
        CHECK(text.find("status=403") != std::string::npos);
        CHECK(text.find("bytes_out=" + std::to_string(body_bytes)) != std::string::npos);
    }
}
