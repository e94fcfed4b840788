// The built msiproxy binary, as systemd runs it: sd_notify on a test NOTIFY_SOCKET, SIGHUP
// reloads under traffic, SIGTERM drains, exit codes, and no token in its output at trace level.
#include <catch2/catch.hpp>

#include <algorithm>
#include <csignal>
#include <fstream>
#include <sstream>
#include <thread>

#include "support/child_process.hpp"
#include "support/config_template.hpp"
#include "support/temp_dir.hpp"
#include "support/test_client.hpp"
#include "support/test_environment.hpp"

namespace t = msiproxy::test;
using namespace std::chrono_literals;

namespace {

constexpr std::string_view base_config = R"(
[proxy]
listen = "127.0.0.1:{proxy_port}"
shutdown_grace = "10s"
[admin]
listen = "127.0.0.1:{admin_port}"
[log]
level = "{level}"
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

constexpr std::string_view extra_route = R"(
[[route]]
name = "new"
host = "new.test"
upstream = "https://localhost:{upstream_port}/v2"
resource = "https://new.test"
)";

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

std::string get(std::string_view host, std::string_view extra = "") {
    return "GET http://" + std::string(host) + "/x HTTP/1.1\r\nHost: " + std::string(host) +
           "\r\n" + std::string(extra) + "\r\n";
}

struct daemon_fixture {
    t::test_environment env;
    t::temp_dir dir;
    std::uint16_t proxy_port = t::closed_port();
    std::uint16_t admin_port = t::closed_port();
    std::string config_path = (dir.path() / "config.toml").string();
    std::string log_path = (dir.path() / "daemon.log").string();
    t::notify_socket notify{(dir.path() / "notify.sock").string()};
    std::unique_ptr<t::child_process> proc;

    std::string render(std::string_view extra = "", std::string_view level = "info") const {
        auto vars = env.vars();
        vars["proxy_port"] = std::to_string(proxy_port);
        vars["admin_port"] = std::to_string(admin_port);
        vars["level"] = std::string(level);
        return t::substitute(std::string(base_config) + std::string(extra), vars);
    }
    void write_config(const std::string& text) const { dir.write_file("config.toml", text); }
    void start(std::string_view level = "info") {
        REQUIRE(proxy_port != admin_port);
        write_config(render("", level));
        proc = std::make_unique<t::child_process>(
            std::vector<std::string>{MSIPROXY_BINARY, "--config", config_path},
            std::vector<std::string>{"NOTIFY_SOCKET=" + notify.path()}, log_path);
        REQUIRE(notify.wait_for("READY=1"));
    }
    std::string log() const { return read_file(log_path); }
};

}  // namespace

TEST_CASE("SIGHUP under traffic: a valid config is swapped in, an invalid one rejected", "[e2e]") {
    daemon_fixture d;
    d.start();

    std::atomic<bool> stop{false};
    std::atomic<int> ok{0}, failed{0};
    std::thread traffic([&] {
        while (!stop) {
            // A keep-alive connection for a few requests, then a fresh one.
            t::client_connection c(d.proxy_port);
            for (int i = 0; i < 20 && !stop; ++i) {
                auto r = c.request(get("api.test"));
                (r && r->status == 200 ? ok : failed)++;
                if (!r) break;
            }
        }
    });
    while (ok < 20)
        std::this_thread::sleep_for(10ms);

    d.write_config(d.render(extra_route));
    d.proc->signal(SIGHUP);
    CHECK(d.notify.wait_for("RELOADING=1"));
    CHECK(d.notify.wait_for("READY=1"));
    auto r = t::http_exchange(d.proxy_port, get("new.test"));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(d.env.identity.token_for("https://new.test"));
    const auto seen = d.env.upstream.requests().all();
    CHECK(std::any_of(seen.begin(), seen.end(), [](const auto& q) { return q.target == "/v2/x"; }));

    d.write_config("[proxy]\nlisten = 5\n");
    d.proc->signal(SIGHUP);
    CHECK(d.notify.wait_for("RELOADING=1"));
    CHECK(d.notify.wait_for("READY=1"));
    r = t::http_exchange(d.proxy_port, get("new.test"));
    REQUIRE(r);
    CHECK(r->status == 200);  // still the last good config

    const int before = ok;
    while (ok < before + 20)
        std::this_thread::sleep_for(10ms);
    stop = true;
    traffic.join();
    CHECK(failed == 0);
    CHECK(d.log().find("reload rejected") != std::string::npos);
    CHECK(d.log().find("config.toml:2:") != std::string::npos);  // the error names the line

    d.proc->signal(SIGTERM);
    CHECK(d.notify.wait_for("STOPPING=1"));
    CHECK(d.proc->wait() == 0);
}

TEST_CASE("SIGTERM drains: in-flight request finishes, new connections refused, exit 0", "[e2e]") {
    daemon_fixture d;
    d.start();
    std::optional<unsigned> slow_status;
    std::thread slow([&] {
        auto r = t::http_exchange(d.proxy_port, get("api.test", "x-fake-delay-ms: 1500\r\n"));
        if (r) slow_status = r->status;
    });
    REQUIRE(d.env.upstream.wait_for_requests(1));
    d.proc->signal(SIGTERM);
    REQUIRE(d.notify.wait_for("STOPPING=1"));
    CHECK_THROWS(t::client_connection(d.proxy_port));  // the listener is closed
    slow.join();
    CHECK(slow_status == 200u);
    CHECK(d.proc->wait() == 0);
}

TEST_CASE("no token in the daemon's output at trace level", "[e2e]") {
    daemon_fixture d;
    d.start("trace");
    t::client_connection c(d.proxy_port);
    REQUIRE(c.request(get("api.test", "Authorization: Bearer app-own-secret\r\n"))->status == 200);
    const std::string reject =
        "x-fake-status: 401\r\nx-fake-www-authenticate: Bearer error=\"invalid_token\"\r\n";
    REQUIRE(c.request(get("api.test", reject))->status == 401);
    REQUIRE(d.env.identity.wait_for_requests(2));
    REQUIRE(c.request(get("api.test"))->status == 200);
    auto tokens = t::http_exchange(d.admin_port, "GET /tokens HTTP/1.1\r\nHost: a\r\n\r\n");
    auto metrics = t::http_exchange(d.admin_port, "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n");
    REQUIRE(tokens);
    REQUIRE(metrics);
    d.proc->signal(SIGTERM);
    REQUIRE(d.proc->wait() == 0);

    const std::string log = d.log();
    CHECK(log.find("route=api") != std::string::npos);  // the access log was written
    CHECK(log.find("app-own-secret") == std::string::npos);
    REQUIRE(d.env.identity.issued_tokens().size() >= 2);
    for (const auto& token : d.env.identity.issued_tokens()) {
        CHECK(log.find(token) == std::string::npos);
        CHECK(tokens->body.find(token) == std::string::npos);
        CHECK(metrics->body.find(token) == std::string::npos);
    }
}

TEST_CASE("exit codes: invalid config 1, bad command line 2, listener in use 3", "[e2e]") {
    t::temp_dir dir;
    const std::string log = (dir.path() / "out.log").string();
    auto run = [&](std::vector<std::string> args) {
        args.insert(args.begin(), MSIPROXY_BINARY);
        t::child_process p(std::move(args), {}, log);
        return p.wait();
    };
    CHECK(run({"--version"}) == 0);
    CHECK(read_file(log).find("msiproxy ") != std::string::npos);

    const auto bad =
        dir.write_file("bad.toml", "[proxy]\nlisten = \"127.0.0.1:1\"\nlisten_typo = 1\n");
    CHECK(run({"--check", "--config", bad}) == 1);
    CHECK(read_file(log).find("bad.toml:3:1") != std::string::npos);
    CHECK(run({"--no-such-flag"}) == 2);

    boost::asio::io_context ioc;
    boost::asio::ip::tcp::acceptor busy(ioc, {boost::asio::ip::make_address_v4("127.0.0.1"), 0});
    const auto cfg = dir.write_file("busy.toml", "[proxy]\nlisten = \"127.0.0.1:" +
                                                     std::to_string(busy.local_endpoint().port()) +
                                                     "\"\n[admin]\nlisten = \"\"\n");
    CHECK(run({"--config", cfg}) == 3);
}
