// An autonomous HTTP/1.1 upstream (plain or TLS) on 127.0.0.1:0 with its own thread: answers
// every request by itself, steered by x-fake-* request headers, and records what it received.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "support/http_record.hpp"
#include "support/server_thread.hpp"
#include "support/tls_certs.hpp"

namespace msiproxy::test {

// Request headers that steer the response (Envoy's autonomous upstream idea):
//   x-fake-status: N          response status (default 200)
//   x-fake-body-bytes: N      body of N pattern bytes (byte_pattern.hpp), streamed, Content-Length
//   x-fake-chunked: 1         chunked transfer coding instead of Content-Length
//   x-fake-no-length: 1       neither: the body ends at EOF (connection closed after it)
//   x-fake-delay-ms: N        wait N ms before writing the response head
//   x-fake-close: 1           Connection: close after this response
//   x-fake-reset: 1           close the socket without responding (after reading the head)
//   x-fake-echo-headers: 1    body is the received request head as text
//   x-fake-drop: 1            close the connection after the response without announcing it
//   x-fake-cut-after: M       write the head and only M body bytes, then reset the connection
//   x-fake-www-authenticate: V   WWW-Authenticate: V on the response
//   x-fake-trailing-garbage: 1   a second, unrequested response right after the "ok" one, in
//                                a write of its own (a broken upstream)
// Without them: 200 with body "ok". HEAD gets the Content-Length the GET would have had and
// no body; 1xx/204/304 never carry a body. Request bodies are read in 64 KiB pieces, counted
// and checksummed, never stored, so uploads of any size work.
struct fake_upstream_options {
    // Present: serve TLS with this certificate and key (e.g. test_certificates::leaf()).
    std::optional<pem_pair> tls{};
    // Answer "Expect: 100-continue" with an interim 100 before reading the body. When false the
    // fake reads the body without sending one (like a server that ignores Expect).
    bool send_100_continue = true;
};

class fake_upstream {
  public:
    // Starts listening at once. Throws when it cannot bind.
    explicit fake_upstream(fake_upstream_options options = {});
    ~fake_upstream();
    fake_upstream(const fake_upstream&) = delete;
    fake_upstream& operator=(const fake_upstream&) = delete;

    std::uint16_t port() const { return server_.port(); }
    bool tls() const { return options_.tls.has_value(); }

    // Every request whose head was read, in arrival order (recorded once the body is consumed).
    const request_log& requests() const { return log_; }
    request_log& requests() { return log_; }
    bool wait_for_requests(std::size_t n,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
        return log_.wait_for(n, timeout);
    }

    std::uint64_t connections_accepted() const { return server_.connections_accepted(); }
    std::uint64_t tls_handshakes() const { return handshakes_.load(); }
    // Of those, the ones that resumed an earlier session (abbreviated handshakes).
    std::uint64_t tls_resumptions() const { return resumptions_.load(); }
    // Interim 100 Continue responses written so far.
    std::uint64_t continues_sent() const { return continues_.load(); }

    void stop() { server_.stop(); }

  private:
    struct session;
    boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket, std::uint64_t id);

    fake_upstream_options options_;
    std::unique_ptr<boost::asio::ssl::context> ssl_;
    request_log log_;
    std::atomic<std::uint64_t> handshakes_{0};
    std::atomic<std::uint64_t> resumptions_{0};
    std::atomic<std::uint64_t> continues_{0};
    server_thread server_;  // last: stopped and destroyed first
};

}  // namespace msiproxy::test
