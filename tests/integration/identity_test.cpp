// Issue 3's cache behaviour end to end: single flight on a cold start, proactive refresh of
// short-lived tokens without making requests wait, failures answered 503 with a bounded call
// rate and recovery, permanent failures not retried, and a refresh on 401 invalid_token.
#include <catch2/catch.hpp>

#include <atomic>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>

#include "config/config.hpp"
#include "support/captured_log.hpp"
#include "support/config_template.hpp"

#include "support/proxy_fixture.hpp"
#include "support/test_client.hpp"
#include "support/test_environment.hpp"

namespace t = msiproxy::test;
using namespace std::chrono_literals;
using steady = std::chrono::steady_clock;

namespace {

constexpr std::string_view config_template = R"(
[log]
level = "warn"
access = false

[identity]
source = "imds"
endpoint = "{identity_url}"
retry_max = "2s"

[upstream]
ca_file = "{ca_file}"

[[route]]
name = "api"
host = "api.test"
upstream = "https://localhost:{upstream_port}"
resource = "https://api.test"
)";

std::string get(std::string_view path = "/x", std::string_view extra = "") {
    return "GET http://api.test" + std::string(path) + " HTTP/1.1\r\nHost: api.test\r\n" +
           std::string(extra) + "\r\n";
}

std::optional<std::string> bearer_of(const t::recorded_request& r) {
    auto h = r.header("Authorization");
    if (!h || !h->starts_with("Bearer ")) return std::nullopt;
    return h->substr(7);
}

// Polls until pred() or the timeout; true if pred() held.
template <class Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout) {
    const auto end = steady::now() + timeout;
    while (steady::now() < end) {
        if (pred()) return true;
        std::this_thread::sleep_for(20ms);
    }
    return pred();
}

}  // namespace

TEST_CASE("64 concurrent cold requests make one identity call", "[integration][identity]") {
    t::test_environment env;
    // The token takes a while, so every request arrives while the first fetch is in flight.
    env.identity.set_delay(800ms);
    t::proxy_fixture proxy(config_template, env.vars());

    std::vector<std::thread> clients;
    std::atomic<int> ok{0};
    for (int i = 0; i < 64; ++i) {
        clients.emplace_back([&] {
            auto r = t::http_exchange(proxy.proxy_port(), get());
            if (r && r->status == 200) ++ok;
        });
    }
    for (auto& c : clients)
        c.join();
    CHECK(ok == 64);
    CHECK(env.identity.request_count() == 1);
    CHECK(env.upstream.requests().size() == 64);
}

TEST_CASE("8-second tokens over 20 s: always valid, refreshed ahead, nobody waits",
          "[integration][identity]") {
    t::test_environment env;
    env.identity.set_lifetime(8s);
    env.identity.set_delay(1500ms);  // every refresh takes 1.5 s
    t::proxy_fixture proxy(config_template, env.vars());
    REQUIRE(t::http_exchange(proxy.proxy_port(), get())->status == 200);  // warm

    t::client_connection c(proxy.proxy_port());
    int requests = 0;
    steady::duration slowest{};
    const auto end = steady::now() + 20s;
    while (steady::now() < end) {
        const auto start = steady::now();
        auto r = c.request(get());
        REQUIRE(r);
        REQUIRE(r->status == 200);
        slowest = std::max(slowest, steady::now() - start);
        ++requests;
        std::this_thread::sleep_for(25ms);
    }
    // Requests never waited for a 1.5 s refresh.
    CHECK(slowest < 1500ms);
    // Several tokens were used, each with at least 1 s of life left when the upstream got it.
    std::set<std::string> used;
    for (const auto& rec : env.upstream.requests().all()) {
        auto tok = bearer_of(rec);
        REQUIRE(tok);
        used.insert(*tok);
        auto expiry = env.identity.expiry_of(*tok);
        REQUIRE(expiry);
        CHECK(*expiry - rec.received_at >= 1s);
    }
    CHECK(used.size() >= 3);
    // About one fetch per half lifetime, not a storm.
    CHECK(env.identity.request_count() <= 10);
    INFO(requests << " requests");
}

TEST_CASE("a failing identity endpoint: 503 + Retry-After, bounded retries, recovery",
          "[integration][identity]") {
    t::test_environment env;
    env.identity.fail_with(500, R"({"error":"server_error","error_description":"boom"})");
    t::proxy_fixture proxy(config_template, env.vars());
    REQUIRE(env.identity.wait_for_requests(1));

    auto r = t::http_exchange(proxy.proxy_port(), get());
    REQUIRE(r);
    CHECK(r->status == 503);
    REQUIRE(r->header("Retry-After"));
    CHECK(std::stoi(*r->header("Retry-After")) >= 1);
    CHECK(r->header("Proxy-Status")->find("error=proxy_internal_error") != std::string::npos);
    auto body = nlohmann::json::parse(r->body);
    CHECK(body["message"].get<std::string>().find("boom") != std::string::npos);
    CHECK(body["route"] == "api");
    CHECK(env.upstream.requests().size() == 0);

    // Over 5 s with a 2 s backoff cap: about 1 + 1 + 2 + 2 s, never a storm.
    std::this_thread::sleep_for(5s);
    const auto calls = env.identity.request_count();
    CHECK(calls >= 2);
    CHECK(calls <= 6);

    // The endpoint comes back: served again within the backoff cap (plus slack).
    env.identity.succeed();
    CHECK(eventually(
        [&] {
            auto again = t::http_exchange(proxy.proxy_port(), get());
            return again && again->status == 200;
        },
        5s));
}

TEST_CASE("identity not found is not retried until reload", "[integration][identity]") {
    t::test_environment env;
    env.identity.fail_with(
        400, R"({"error":"invalid_request","error_description":"Identity not found"})");
    t::proxy_fixture proxy(config_template, env.vars());
    REQUIRE(env.identity.wait_for_requests(1));
    std::this_thread::sleep_for(2500ms);
    auto r = t::http_exchange(proxy.proxy_port(), get());
    REQUIRE(r);
    CHECK(r->status == 503);
    CHECK(r->body.find("Identity not found") != std::string::npos);
    CHECK(env.identity.request_count() == 1);
}

TEST_CASE("an upstream 401 invalid_token refreshes the token once", "[integration][identity]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, env.vars());
    t::client_connection c(proxy.proxy_port());
    REQUIRE(c.request(get())->status == 200);
    REQUIRE(env.identity.request_count() == 1);
    const std::string reject =
        "x-fake-status: 401\r\nx-fake-www-authenticate: Bearer error=\"invalid_token\"\r\n";
    auto r = c.request(get("/x", reject));
    REQUIRE(r);
    CHECK(r->status == 401);  // the upstream's answer is passed on
    CHECK(env.identity.wait_for_requests(2));
    // A second rejection within the minute does not cause another fetch.
    REQUIRE(c.request(get("/x", reject))->status == 401);
    std::this_thread::sleep_for(300ms);
    CHECK(env.identity.request_count() == 2);
    // The new token is used from then on.
    REQUIRE(eventually(
        [&] {
            return c.request(get())->status == 200 &&
                   bearer_of(env.upstream.requests().all().back()) ==
                       env.identity.issued_tokens().back();
        },
        3s));
}

TEST_CASE("a pooled connection the upstream closed is replaced for an idempotent request",
          "[integration][identity]") {
    t::test_environment env;
    t::proxy_fixture proxy(config_template, env.vars());
    t::client_connection c(proxy.proxy_port());
    // The upstream closes after answering, without saying so; the proxy parks the connection.
    REQUIRE(c.request(get("/first", "x-fake-drop: 1\r\n"))->status == 200);
    std::this_thread::sleep_for(100ms);
    auto r = c.request(get("/second"));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(env.upstream.requests().size() == 2);
}

TEST_CASE("two worker threads share the port and the token cache", "[integration][threads]") {
    t::test_environment env;
    const std::string two_threads = "[proxy]\nthreads = 2\n" + std::string(config_template);
    t::proxy_fixture proxy(two_threads, env.vars());

    std::vector<std::thread> clients;
    std::atomic<int> ok{0};
    for (int i = 0; i < 16; ++i) {
        clients.emplace_back([&] {
            for (int j = 0; j < 10; ++j) {
                t::client_connection c(proxy.proxy_port());
                for (int k = 0; k < 5; ++k) {
                    auto r = c.request(get());
                    if (r && r->status == 200) ++ok;
                }
            }
        });
    }
    for (auto& c : clients)
        c.join();
    CHECK(ok == 16 * 10 * 5);
    CHECK(env.identity.request_count() == 1);
    // Both workers accepted connections (the kernel spreads them over the two listeners).
    const auto seen = env.upstream.requests().all();
    CHECK(seen.size() == 800u);
}

TEST_CASE(
    "a reload on two worker threads: new routes and their tokens on both, restart-only "
    "settings named",
    "[integration][threads]") {
    t::test_environment env;
    t::captured_log log;
    const std::string two_threads = "[proxy]\nthreads = 2\n" + std::string(config_template);
    t::proxy_fixture proxy(two_threads, env.vars());
    REQUIRE(env.identity.wait_for_requests(1));

    // The new file adds a route and changes two settings that a reload cannot apply.
    std::string next = "[proxy]\nthreads = 1\n" + std::string(config_template) + R"(
[[route]]
name = "new"
host = "new.test"
upstream = "https://localhost:{upstream_port}"
resource = "https://new.test"
)";
    const std::string old_retry = "retry_max = \"2s\"";
    next.replace(next.find(old_retry), old_retry.size(), "retry_max = \"3s\"");
    proxy.app().reload(msiproxy::load_config_string(t::substitute(next, env.vars()), "<next>"));

    // Every connection, whichever worker accepts it, sees the new route with its own token.
    const std::string req = "GET http://new.test/n HTTP/1.1\r\nHost: new.test\r\n\r\n";
    CHECK(eventually(
        [&] {
            t::client_connection c(proxy.proxy_port());
            auto r = c.request(req);
            return r && r->status == 200;
        },
        5s));
    int ok = 0;
    for (int i = 0; i < 20; ++i) {
        t::client_connection c(proxy.proxy_port());
        auto r = c.request(req);
        if (r && r->status == 200) ++ok;
    }
    CHECK(ok == 20);
    bool new_resource_fetched = false;
    for (const auto& r : env.identity.requests().all()) {
        auto it = r.query.find("resource");
        new_resource_fetched =
            new_resource_fetched || (it != r.query.end() && it->second == "https://new.test");
    }
    CHECK(new_resource_fetched);
    const auto text = log.text();
    INFO(text);
    CHECK(text.find("proxy.threads") != std::string::npos);
    CHECK(text.find("identity.retry_max") != std::string::npos);
    CHECK(text.find("change(s) only on restart") != std::string::npos);
}
