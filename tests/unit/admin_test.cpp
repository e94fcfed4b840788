// Unit tests for admin/admin_server: the server runs on its own io_context thread on
// 127.0.0.1:0 and is queried with a small synchronous Beast client.
#include <catch2/catch.hpp>

#include <chrono>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "admin/admin_server.hpp"
#include "admin/metrics.hpp"
#include "common/time_format.hpp"
#include "identity/token_status.hpp"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using namespace std::chrono_literals;

using client_response = http::response<http::string_body>;

// Runs the admin server until destruction, which cancels it and waits for its io_context to
// run out of work: a server that leaves sessions behind makes the test hang, not pass.
struct admin_fixture {
    asio::io_context ioc;
    msiproxy::metrics stats;
    std::mutex mutex;  // tokens/listening are written by the test, read by the server thread
    std::vector<msiproxy::token_status> tokens;
    bool listening = true;
    bool tokens_throw = false;
    msiproxy::admin_context ctx;
    asio::cancellation_signal stop;
    std::thread thread;
    std::uint16_t port = 0;

    admin_fixture() {
        ctx.stats = &stats;
        ctx.tokens = [this] {
            std::lock_guard lock(mutex);
            if (tokens_throw) throw std::runtime_error("cache gone");
            return tokens;
        };
        ctx.listening = [this] {
            std::lock_guard lock(mutex);
            return listening;
        };
        tcp::acceptor acceptor(ioc, {asio::ip::address_v4::loopback(), 0});
        port = acceptor.local_endpoint().port();
        asio::co_spawn(ioc, msiproxy::run_admin_server(std::move(acceptor), ctx),
                       asio::bind_cancellation_slot(stop.slot(), [](std::exception_ptr e) {
                           if (e) std::rethrow_exception(e);
                       }));
        thread = std::thread([this] { ioc.run(); });
    }

    ~admin_fixture() {
        asio::post(ioc, [this] { stop.emit(asio::cancellation_type::terminal); });
        thread.join();
    }

    void set_tokens(std::vector<msiproxy::token_status> t, bool is_listening = true) {
        std::lock_guard lock(mutex);
        tokens = std::move(t);
        listening = is_listening;
    }
};

struct client {
    asio::io_context ioc;
    tcp::socket socket{ioc};
    beast::flat_buffer buffer;

    explicit client(std::uint16_t port) {
        socket.connect({asio::ip::address_v4::loopback(), port});
    }

    client_response send(http::verb verb, std::string target, bool keep_alive = true) {
        http::request<http::string_body> req{verb, target, 11};
        req.set(http::field::host, "127.0.0.1");
        req.keep_alive(keep_alive);
        req.prepare_payload();
        http::write(socket, req);
        http::response_parser<http::string_body> parser;
        parser.skip(verb == http::verb::head);
        http::read(socket, buffer, parser);
        return parser.release();
    }

    // True when the server closed the connection (read returns EOF).
    bool closed_by_peer() {
        char c;
        beast::error_code ec;
        socket.read_some(asio::buffer(&c, 1), ec);
        return ec == asio::error::eof || ec == asio::error::connection_reset;
    }
};

client_response get(std::uint16_t port, std::string target) {
    client c(port);
    return c.send(http::verb::get, std::move(target), false);
}

msiproxy::token_status full_status(std::string resource, bool usable) {
    using namespace std::chrono;
    msiproxy::token_status t;
    t.identity = "client_id=00000000-0000-0000-0000-000000000001";
    t.resource = std::move(resource);
    t.state = usable ? "valid" : "failed";
    t.usable = usable;
    const auto base = sys_days{year{2026} / 11 / 29} + 5h;
    t.expires_on = base + 1h;
    t.refresh_at = base + 30min;
    t.last_refresh = base;
    t.last_error = usable ? "" : "imds: connection refused";
    return t;
}

}  // namespace

TEST_CASE("admin: /healthz answers ok", "[unit][admin]") {
    admin_fixture f;
    auto res = get(f.port, "/healthz");
    CHECK(res.result() == http::status::ok);
    CHECK(res.body() == "ok\n");
    CHECK(res[http::field::content_type].starts_with("text/plain"));
}

TEST_CASE("admin: /readyz", "[unit][admin]") {
    admin_fixture f;

    SECTION("ready when listening and every token is usable") {
        f.set_tokens({full_status("https://graph.microsoft.com", true)});
        auto res = get(f.port, "/readyz");
        CHECK(res.result() == http::status::ok);
        CHECK(res.body() == "ready\n");
    }
    SECTION("ready with no routes at all") {
        f.set_tokens({});
        CHECK(get(f.port, "/readyz").result() == http::status::ok);
    }
    SECTION("a token that cannot be used is reported as missing") {
        f.set_tokens({full_status("https://graph.microsoft.com", true),
                      full_status("https://vault.azure.net", false)});
        auto res = get(f.port, "/readyz");
        CHECK(res.result() == http::status::service_unavailable);
        CHECK(res[http::field::content_type] == "application/json");
        auto j = nlohmann::json::parse(res.body());
        CHECK(j["ready"] == false);
        CHECK(j["listening"] == true);
        REQUIRE(j["missing"].size() == 1);
        const auto& m = j["missing"][0];
        CHECK(m["identity"] == "client_id=00000000-0000-0000-0000-000000000001");
        CHECK(m["resource"] == "https://vault.azure.net");
        CHECK(m["state"] == "failed");
        CHECK(m["last_error"] == "imds: connection refused");
    }
    SECTION("not ready while the proxy is not listening") {
        f.set_tokens({}, false);
        auto res = get(f.port, "/readyz");
        CHECK(res.result() == http::status::service_unavailable);
        auto j = nlohmann::json::parse(res.body());
        CHECK(j["listening"] == false);
        CHECK(j["missing"].empty());
    }
}

TEST_CASE("admin: /metrics renders the metrics", "[unit][admin]") {
    admin_fixture f;
    f.stats.request_finished("graph", 200, 0.01);
    auto res = get(f.port, "/metrics");
    CHECK(res.result() == http::status::ok);
    CHECK(res[http::field::content_type].starts_with("text/plain; version=0.0.4"));
    CHECK(res.body().find("msiproxy_requests_total{route=\"graph\",code=\"200\"} 1\n") !=
          std::string::npos);
    CHECK(res.body().find("# TYPE msiproxy_request_duration_seconds histogram\n") !=
          std::string::npos);
}

TEST_CASE("admin: /tokens lists timing and health, nothing else", "[unit][admin]") {
    admin_fixture f;
    msiproxy::token_status pending;
    pending.identity = "system";
    pending.resource = "https://storage.azure.com";
    pending.state = "pending";
    f.set_tokens({full_status("https://graph.microsoft.com", true), pending});

    auto res = get(f.port, "/tokens");
    CHECK(res.result() == http::status::ok);
    CHECK(res[http::field::content_type] == "application/json");
    auto j = nlohmann::json::parse(res.body());
    REQUIRE(j.is_array());
    REQUIRE(j.size() == 2);

    const std::set<std::string> expected_keys{
        "identity", "resource", "state", "expires_on", "refresh_at", "last_refresh", "last_error"};
    for (const auto& t : j) {
        std::set<std::string> keys;
        for (const auto& [k, v] : t.items()) {
            keys.insert(k);
            // Shape, not content: every value is a short string or null.
            CHECK((v.is_null() || v.is_string()));
        }
        CHECK(keys == expected_keys);
    }
    CHECK(j[0]["identity"] == "client_id=00000000-0000-0000-0000-000000000001");
    CHECK(j[0]["resource"] == "https://graph.microsoft.com");
    CHECK(j[0]["state"] == "valid");
    CHECK(j[0]["expires_on"] == "2026-11-29T06:00:00Z");
    CHECK(j[0]["refresh_at"] == "2026-11-29T05:30:00Z");
    CHECK(j[0]["last_refresh"] == "2026-11-29T05:00:00Z");
    CHECK(j[0]["last_error"].is_null());
    CHECK(j[1]["state"] == "pending");
    CHECK(j[1]["expires_on"].is_null());
    CHECK(j[1]["refresh_at"].is_null());
    CHECK(j[1]["last_refresh"].is_null());
}

TEST_CASE("admin: unknown path is 404, other methods are 405 with Allow", "[unit][admin]") {
    admin_fixture f;
    CHECK(get(f.port, "/nope").result() == http::status::not_found);
    CHECK(get(f.port, "/healthz/extra").result() == http::status::not_found);
    CHECK(get(f.port, "/healthz?verbose=1").result() == http::status::ok);

    client c(f.port);
    auto res = c.send(http::verb::post, "/healthz");
    CHECK(res.result() == http::status::method_not_allowed);
    CHECK(res[http::field::allow] == "GET, HEAD");
    CHECK(c.send(http::verb::delete_, "/nope").result() == http::status::not_found);
}

TEST_CASE("admin: HEAD gets the headers of GET without a body", "[unit][admin]") {
    admin_fixture f;
    client c(f.port);
    auto res = c.send(http::verb::head, "/healthz");
    CHECK(res.result() == http::status::ok);
    CHECK(res[http::field::content_length] == "3");
    CHECK(res.body().empty());
    // The connection is still in sync: the next answer is read correctly.
    CHECK(c.send(http::verb::get, "/healthz").body() == "ok\n");
}

TEST_CASE("admin: keep-alive serves several requests, close is honoured", "[unit][admin]") {
    admin_fixture f;
    client c(f.port);
    CHECK(c.send(http::verb::get, "/healthz").result() == http::status::ok);
    CHECK(c.send(http::verb::get, "/metrics").result() == http::status::ok);
    auto last = c.send(http::verb::get, "/healthz", false);
    CHECK(last.result() == http::status::ok);
    CHECK_FALSE(last.keep_alive());
    CHECK(c.closed_by_peer());
}

TEST_CASE("admin: an oversized header gets 431 and a close", "[unit][admin]") {
    admin_fixture f;
    client c(f.port);
    http::request<http::string_body> req{http::verb::get, "/healthz", 11};
    req.set(http::field::host, "127.0.0.1");
    req.set("X-Filler", std::string(9000, 'a'));
    http::write(c.socket, req);
    client_response res;
    http::read(c.socket, c.buffer, res);
    CHECK(res.result() == http::status::request_header_fields_too_large);
    CHECK(c.closed_by_peer());
}

TEST_CASE("admin: a broken connection does not stop the server", "[unit][admin]") {
    admin_fixture f;
    {
        client c(f.port);
        asio::write(c.socket, asio::buffer(std::string("GARBAGE \x01\x02 nonsense\r\n\r\n")));
        CHECK(c.closed_by_peer());
    }
    {
        client c(f.port);
        asio::write(c.socket, asio::buffer(std::string("GET /healthz HTTP/1.1\r\nHo")));
        // Dropped mid-header.
    }
    CHECK(get(f.port, "/healthz").body() == "ok\n");
}

TEST_CASE("admin: a throwing callback costs one answer, not the server", "[unit][admin]") {
    admin_fixture f;
    {
        std::lock_guard lock(f.mutex);
        f.tokens_throw = true;
    }
    auto res = get(f.port, "/tokens");
    CHECK(res.result() == http::status::internal_server_error);
    CHECK(res.body().find("cache gone") == std::string::npos);
    CHECK(get(f.port, "/healthz").result() == http::status::ok);
    CHECK(get(f.port, "/readyz").result() == http::status::internal_server_error);
}

TEST_CASE("admin: stopping the server ends idle keep-alive connections", "[unit][admin]") {
    client* idle = nullptr;
    std::unique_ptr<client> holder;
    {
        admin_fixture f;
        holder = std::make_unique<client>(f.port);
        idle = holder.get();
        CHECK(idle->send(http::verb::get, "/healthz").result() == http::status::ok);
        // ~admin_fixture cancels the server; it returns only if the idle session ended too.
    }
    CHECK(idle->closed_by_peer());
}
