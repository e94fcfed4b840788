// proxy_fixture: the app's thread and lifetime. The app is the real one; only its listen
// addresses are forced to ephemeral loopback ports so tests can run in parallel.
#include "support/proxy_fixture.hpp"

#include <exception>
#include <iostream>

#include "log/logging.hpp"

namespace msiproxy::test {

proxy_fixture::proxy_fixture(std::string_view toml_template,
                             const std::map<std::string, std::string>& vars)
    : proxy_fixture(msiproxy::load_config_string(substitute(toml_template, vars), "<test>")) {}

proxy_fixture::proxy_fixture(msiproxy::config cfg) : config_(std::move(cfg)) {
    config_.proxy.listen = listen_address{"127.0.0.1", 0};
    config_.admin.listen = listen_address{"127.0.0.1", 0};
    launch();
}

void proxy_fixture::launch() {
    // As main() does before it starts the app: each test's logging follows its own [log], not
    // whatever an earlier test in the same process set up.
    msiproxy::setup_logging(config_.log);
    app_ = std::make_unique<msiproxy::app>(
        config_, msiproxy::app::options{.handle_signals = false, .notify_systemd = false});
    app_->start();
    proxy_port_ = app_->proxy_port();
    admin_port_ = app_->admin_port();
    thread_ = std::thread([this] {
        try {
            exit_status_ = app_->run();
        } catch (const std::exception& e) {
            // Surfaces in the test output; the test then fails on its own assertions.
            std::cerr << "msiproxy::app::run threw: " << e.what() << '\n';
            exit_status_ = -2;
        }
    });
}

int proxy_fixture::stop_and_join() {
    if (thread_.joinable()) {
        app_->stop();
        thread_.join();
    }
    return exit_status_;
}

proxy_fixture::~proxy_fixture() {
    stop_and_join();
}

}  // namespace msiproxy::test
