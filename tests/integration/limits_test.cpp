// The hardening issue's limits end to end: max_connections back-pressure, header_timeout
// against slowloris, idle_timeout, max_header_bytes and header-field counts (431), and a
// client that stops reading a large response without the proxy buffering it.
#include <catch2/catch.hpp>

#include <functional>
#include <memory>
#include <sstream>
#include <thread>
#include <vector>

#include "support/byte_pattern.hpp"
#include "support/process_memory.hpp"
#include "support/proxy_fixture.hpp"
#include "support/raw_socket.hpp"
#include "support/test_client.hpp"
#include "support/test_environment.hpp"

namespace t = msiproxy::test;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

constexpr std::string_view config_template = R"(
[proxy]
max_connections = {max_connections}
header_timeout = "{header_timeout}"
idle_timeout = "{idle_timeout}"
max_header_bytes = {max_header_bytes}

[log]
level = "warn"
access = false

[identity]
source = "imds"
endpoint = "{identity_url}"

[upstream]
ca_file = "{ca_file}"

[[route]]
name = "api"
host = "api.test"
upstream = "https://localhost:{upstream_port}"
resource = "https://api.test"
)";

// Defaults are generous, so that only the limit a test is about can fire.
std::map<std::string, std::string> vars_for(const t::test_environment& env,
                                            std::map<std::string, std::string> overrides = {}) {
    auto vars = env.vars();
    vars["max_connections"] = "4096";
    vars["header_timeout"] = "60s";
    vars["idle_timeout"] = "60s";
    vars["max_header_bytes"] = "65536";
    for (auto& [k, v] : overrides)
        vars[k] = v;
    return vars;
}

std::string get(std::string_view path = "/x", const t::header_list& headers = {}) {
    return t::proxy_request("GET", "http://api.test" + std::string(path), headers);
}

template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 10s) {
    const auto end = steady::now() + timeout;
    while (steady::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(10ms);
    }
    return pred();
}

// msiproxy_connections_active from the admin listener's /metrics (-1 when unreadable).
long connections_active(const t::proxy_fixture& proxy) {
    auto r = t::http_exchange(proxy.admin_port(), "GET /metrics HTTP/1.1\r\nHost: admin\r\n\r\n");
    if (!r || r->status != 200) return -1;
    std::istringstream lines(r->body);
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind("msiproxy_connections_active ", 0) == 0)
            return std::stol(line.substr(line.find(' ') + 1));
    }
    return -1;
}

// A head of `n` extra fields "X-N-<i>: v".
t::header_list many_fields(int n) {
    t::header_list h;
    for (int i = 0; i < n; ++i)
        h.emplace_back("X-N-" + std::to_string(i), "v");
    return h;
}

void check_431(const boost::system::result<t::http_response>& r) {
    REQUIRE(r);
    INFO("status " << r->status << " body " << r->body);
    CHECK(r->status == 431);
    const auto ps = r->header("Proxy-Status");
    REQUIRE(ps);
    CHECK(ps->find("msiproxy") != std::string::npos);
    CHECK(ps->find("error=http_request_error") != std::string::npos);
}

}  // namespace

TEST_CASE("max_connections: one more connection waits in the backlog until one closes",
          "[integration][limits]") {
    t::test_environment env;
    constexpr int limit = 3;
    t::proxy_fixture proxy(config_template,
                           vars_for(env, {{"max_connections", std::to_string(limit)}}));

    // Each section holds `limit` connections open and returns how to let one of them go.
    std::vector<std::unique_ptr<t::client_connection>> idle;
    std::vector<std::unique_ptr<t::raw_socket>> mid_head;
    std::function<void()> release_one;
    SECTION("held connections idle after a request") {
        for (int i = 0; i < limit; ++i) {
            idle.push_back(std::make_unique<t::client_connection>(proxy.proxy_port()));
            auto r = idle.back()->request(get());
            REQUIRE(r);
            REQUIRE(r->status == 200);
        }
        release_one = [&] { idle.front().reset(); };
    }
    SECTION("held connections in the middle of a request head") {
        for (int i = 0; i < limit; ++i) {
            mid_head.push_back(std::make_unique<t::raw_socket>(proxy.proxy_port()));
            REQUIRE(mid_head.back()->send("GET http://api.test/held HTTP/1.1\r\nHost: api"));
        }
        release_one = [&] { mid_head.front()->close(); };
    }
    REQUIRE(eventually([&] { return connections_active(proxy) == limit; }));
    const auto forwarded = env.upstream.requests().size();

    // The kernel completes the handshake (the connection sits in the listen backlog) but the
    // proxy neither accepts nor answers it while `limit` connections are open.
    t::raw_socket extra(proxy.proxy_port());
    REQUIRE(extra.send(get("/extra", {{"Connection", "close"}})));
    CHECK_FALSE(extra.readable_within(700ms));
    CHECK(connections_active(proxy) == limit);
    CHECK(env.upstream.requests().size() == forwarded);

    // One of them closes: the waiting connection is accepted and served.
    release_one();
    const auto answer = extra.read_until_closed(10s);
    INFO("answer: " << answer.bytes.substr(0, 200));
    CHECK(answer.bytes.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(answer.closed);
    REQUIRE(env.upstream.wait_for_requests(forwarded + 1));
    CHECK(env.upstream.requests().all().back().target == "/extra");
}

TEST_CASE("header_timeout closes a slowloris connection while others are served",
          "[integration][limits]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, vars_for(env, {{"header_timeout", "1500ms"}}));

    t::raw_socket slow(proxy.proxy_port());
    REQUIRE(slow.send("GET http://api.test/slowloris HTTP/1.1\r\nHost: api.test\r\n"));
    // Another client is served normally while the slow head is pending.
    auto r = t::http_exchange(proxy.proxy_port(), get("/meanwhile"));
    REQUIRE(r);
    CHECK(r->status == 200);

    // Trickle one header line every 100 ms: progress does not extend the deadline, the whole
    // head must arrive within header_timeout. The 10 s bound only keeps a failure from hanging.
    int lines = 0;
    const auto give_up = steady::now() + 10s;
    while (steady::now() < give_up && !slow.readable_within(100ms)) {
        if (!slow.send("X-Trickle-" + std::to_string(lines++) + ": v\r\n")) break;
    }
    const auto end = slow.read_until_closed(10s);
    INFO(lines << " lines trickled; received: " << end.bytes.substr(0, 200));
    CHECK(end.closed);
    // The session closes without an answer (a 408 would be acceptable too).
    CHECK((end.bytes.empty() || end.bytes.rfind("HTTP/1.1 408", 0) == 0));
    for (const auto& req : env.upstream.requests().all())
        CHECK(req.target != "/slowloris");

    // And the proxy keeps serving.
    r = t::http_exchange(proxy.proxy_port(), get("/after"));
    REQUIRE(r);
    CHECK(r->status == 200);
}

TEST_CASE("idle_timeout closes an idle keep-alive connection", "[integration][limits]") {
    t::test_environment env;
    // header_timeout far beyond the 10 s wait below: only idle_timeout can close it in time.
    t::proxy_fixture proxy(config_template,
                           vars_for(env, {{"idle_timeout", "500ms"}, {"header_timeout", "60s"}}));
    t::client_connection c(proxy.proxy_port());
    auto r = c.request(get());
    REQUIRE(r);
    REQUIRE(r->status == 200);
    CHECK(r->keep_alive);
    CHECK(c.wait_closed(10s));
    CHECK(eventually([&] { return connections_active(proxy) == 0; }));
}

TEST_CASE("a request head over max_header_bytes gets 431 with Proxy-Status",
          "[integration][limits]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, vars_for(env, {{"max_header_bytes", "4096"}}));

    SECTION("one large field") {
        t::client_connection c(proxy.proxy_port());
        check_431(c.request(get("/big", {{"X-Big", std::string(6000, 'a')}})));
        CHECK(c.wait_closed(10s));
    }
    SECTION("many small fields") {
        t::client_connection c(proxy.proxy_port());
        check_431(c.request(get("/many", many_fields(500))));
        CHECK(c.wait_closed(10s));
    }
    SECTION("a head just under the limit is forwarded") {
        auto r = t::http_exchange(proxy.proxy_port(),
                                  get("/fits", {{"X-Fits", std::string(3800, 'a')}}));
        REQUIRE(r);
        CHECK(r->status == 200);
    }
    CHECK(env.upstream.requests().size() <= 1);
    for (const auto& req : env.upstream.requests().all())
        CHECK(req.target == "/fits");
}

TEST_CASE("200 header fields are forwarded", "[integration][limits]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, vars_for(env));
    auto r = t::http_exchange(proxy.proxy_port(), get("/200", many_fields(200)));
    REQUIRE(r);
    CHECK(r->status == 200);
    REQUIRE(env.upstream.wait_for_requests(1));
    const auto req = env.upstream.requests().all().at(0);
    CHECK(req.header("X-N-0") == "v");
    CHECK(req.header("X-N-199") == "v");
}

TEST_CASE("more than 256 header fields get 431", "[integration][limits]") {
    t::test_environment env;
    // max_header_bytes stays at 64 KiB, far above these heads (about 3 KiB and 12 KiB), so only
    // the field count can refuse them.
    t::proxy_fixture proxy(config_template, vars_for(env));
    SECTION("257 fields") {
        check_431(t::http_exchange(proxy.proxy_port(), get("/257", many_fields(257))));
    }
    SECTION("1000 fields") {
        check_431(t::http_exchange(proxy.proxy_port(), get("/1000", many_fields(1000))));
    }
    CHECK(env.upstream.requests().size() == 0);
}

TEST_CASE("a client that stops reading a 256 MiB response does not grow the proxy",
          "[integration][limits]") {
    t::test_environment env;
    // idle_timeout (which bounds each write to the client) stays well above the pause, so the
    // outcome is deterministic: the transfer resumes and completes.
    t::proxy_fixture proxy(config_template, vars_for(env, {{"idle_timeout", "60s"}}));
    const std::uint64_t n = 256ull * 1024 * 1024;
    t::client_connection c(proxy.proxy_port(), 60s);
    auto r = c.request(get("/warm"));  // token fetched, upstream connection pooled
    REQUIRE(r);
    REQUIRE(r->status == 200);

    const bool reset = t::reset_peak_rss();
    const auto baseline = t::current_rss_bytes();
    REQUIRE(baseline);

    REQUIRE_FALSE(c.send(get("/big", {{"x-fake-body-bytes", std::to_string(n)}})));
    REQUIRE(env.upstream.wait_for_requests(2));
    // The client reads nothing for a while: the upstream keeps offering 256 MiB and the
    // proxy must stop reading it once the client's socket is full, not buffer it.
    std::this_thread::sleep_for(1500ms);
    const auto peak = t::peak_rss_bytes();
    REQUIRE(peak);
    INFO("peak RSS reset: " << reset << ", baseline " << *baseline << ", peak " << *peak);
    if (t::rss_reflects_buffering()) {
        CHECK(*peak - std::min(*peak, *baseline) < 32ull * 1024 * 1024);
    } else {
        WARN("AddressSanitizer build: the RSS bound is checked in the plain build only");
    }

    // Then it reads everything, intact.
    r = c.read_response({.keep_body = false, .timeout = 60s});
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(r->body_bytes == n);
    CHECK(r->body_checksum == t::pattern_checksum(n));
}
