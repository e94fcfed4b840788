// The running daemon: listeners, sessions, upstream pool, token cache, admin server, signals.
// main.cpp builds one from a loaded config; integration tests build one in-process.
#pragma once

#include <cstdint>
#include <memory>

#include "config/config.hpp"

namespace msiproxy {

class app {
  public:
    struct options {
        bool handle_signals = true;  // SIGTERM/SIGINT stop, SIGHUP reload (tests turn it off)
        bool notify_systemd = true;  // sd_notify when NOTIFY_SOCKET is set
    };

    app(config cfg, options opts);
    ~app();
    app(const app&) = delete;
    app& operator=(const app&) = delete;

    // Binds the proxy and admin listeners and starts fetching every route's token.
    // Throws bind_error when a listener cannot be bound. Call once, before run().
    void start();
    std::uint16_t proxy_port() const;
    std::uint16_t admin_port() const;  // 0 when the admin listener is disabled

    // Runs the I/O loop on the calling thread until stopped; returns the exit status.
    int run();
    // Thread-safe: stop accepting, let in-flight requests finish within shutdown_grace.
    void stop();
    // Thread-safe: swap in a new config for new requests (what SIGHUP does after loading it).
    void reload(config cfg);

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

class bind_error : public std::runtime_error {
  public:
    using std::runtime_error::runtime_error;
};

}  // namespace msiproxy
