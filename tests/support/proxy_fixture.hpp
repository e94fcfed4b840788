// Runs a whole msiproxy::app in-process for integration tests: config from a TOML template,
// listeners on 127.0.0.1:0, app.run() on its own thread, stop() + join at destruction.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <thread>

#include "app.hpp"
#include "config/config.hpp"
#include "support/config_template.hpp"

namespace msiproxy::test {

// Typical use (see tests/integration/proxy_test.cpp):
//
//     test_environment env;                       // certs, fake IMDS, TLS + plain upstreams
//     proxy_fixture proxy(R"([identity]
//         source = "imds"
//         endpoint = "{identity_url}"
//         [upstream]
//         ca_file = "{ca_file}"
//         [[route]]
//         name = "api"
//         host = "api.test"
//         upstream = "https://localhost:{upstream_port}/base"
//         resource = "https://api.test")", env.vars());
//     auto r = http_exchange(proxy.proxy_port(), proxy_request("GET", "http://api.test/x"));
//     env.upstream.wait_for_requests(1);
//
// Declare the fixture after the fakes it talks to, so it stops first.
//
// Construction: substitute(), msiproxy::load_config_string (throws config_exception on a bad
// template), then proxy and admin listen on 127.0.0.1:0, then app{cfg, {.handle_signals=false,
// .notify_systemd=false}}, start() (throws bind_error), and run() on a thread.
// Destruction: stop() and join (in-flight requests get the config's shutdown_grace).
// Thread safety: ports and accessors from any thread; stop_and_join from the owner only.
class proxy_fixture {
  public:
    proxy_fixture(std::string_view toml_template, const std::map<std::string, std::string>& vars);
    explicit proxy_fixture(msiproxy::config cfg);
    ~proxy_fixture();
    proxy_fixture(const proxy_fixture&) = delete;
    proxy_fixture& operator=(const proxy_fixture&) = delete;

    std::uint16_t proxy_port() const { return proxy_port_; }
    std::uint16_t admin_port() const { return admin_port_; }
    const msiproxy::config& config() const { return config_; }
    msiproxy::app& app() { return *app_; }

    // Stops the app and waits for run() to return; returns its exit status. Idempotent.
    int stop_and_join();

  private:
    void launch();

    msiproxy::config config_;
    std::unique_ptr<msiproxy::app> app_;
    std::uint16_t proxy_port_ = 0;
    std::uint16_t admin_port_ = 0;
    std::thread thread_;
    int exit_status_ = -1;
};

}  // namespace msiproxy::test
