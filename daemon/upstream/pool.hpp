// Keep-alive connections to upstreams, per scheme+host+port: connect (DNS, TCP, TLS) with a
// timeout, reuse idle connections, expire idle ones, and refuse forbidden destinations.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "upstream/connection.hpp"

namespace msiproxy {

struct pool_options {
    std::chrono::milliseconds connect_timeout{5000};
    std::chrono::milliseconds idle_timeout{60000};  // parked longer than this: closed
    std::size_t max_idle_per_endpoint = 128;
};

// What a destination may not be; checked on every resolved address before connecting.
struct destination_policy {
    bool forbid_link_local = false;  // 169.254.0.0/16 and fe80::/10 (IMDS and friends)
    bool forbid_private = false;     // loopback, 10/8, 172.16/12, 192.168/16, 100.64/10, fc00::/7
    std::vector<boost::asio::ip::tcp::endpoint> forbidden;  // our own listeners
};

class upstream_pool {
  public:
    // Not thread-safe: one pool per I/O thread. `tls` must outlive the pool.
    upstream_pool(boost::asio::any_io_executor ex, boost::asio::ssl::context& tls,
                  pool_options opts);
    ~upstream_pool();

    using acquire_result =
        std::pair<boost::system::error_code, std::unique_ptr<upstream_connection>>;

    // An idle connection when one is alive (reuse), else a new one. Errors are msiproxy::errc:
    // dns_error, connection_refused, connect_timeout, tls_*, destination_prohibited.
    boost::asio::awaitable<acquire_result> acquire(const upstream_endpoint& ep,
                                                   const destination_policy* policy,
                                                   bool allow_reuse = true);
    // A plain TCP connection for CONNECT tunnels; never pooled.
    boost::asio::awaitable<std::pair<boost::system::error_code, boost::beast::tcp_stream>>
    connect_tcp(const std::string& host, std::uint16_t port, const destination_policy* policy);

    // Parks a connection whose last exchange ended cleanly with keep-alive.
    void release(std::unique_ptr<upstream_connection> conn);
    // Closes every idle connection and stops the sweeper.
    void shutdown();

    std::size_t idle_count() const;

  private:
    boost::asio::awaitable<void> sweep_loop();

    boost::asio::any_io_executor ex_;
    boost::asio::ssl::context& tls_;
    pool_options opts_;
    std::map<std::string, std::vector<std::unique_ptr<upstream_connection>>> idle_;
    // The TLS session to resume, per endpoint key; at most max_sessions endpoints (unmatched
    // absolute-form https:// requests could name any number of hosts).
    static constexpr std::size_t max_sessions = 256;
    std::map<std::string, std::shared_ptr<tls_session_slot>> sessions_;
    std::uint64_t session_uses_ = 0;  // orders the slots by last use, for eviction
    boost::asio::steady_timer sweep_timer_;
    bool sweeping_ = false;
    bool shut_down_ = false;
};

}  // namespace msiproxy
