// Upstream connection pool: connect path (resolve -> policy check -> TCP -> TLS) and the idle
// list with liveness checks and expiry.
#include "upstream/pool.hpp"

#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <optional>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>

#include "common/error.hpp"
#include "upstream/tls.hpp"

namespace msiproxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using clock_type = std::chrono::steady_clock;
using asio::experimental::awaitable_operators::operator||;

std::string upstream_endpoint::key() const {
    std::string k = tls ? "https://" : "http://";
    if (host.find(':') != std::string::npos) {
        k += '[' + host + ']';
    } else {
        k += host;
    }
    k += ':' + std::to_string(port);
    return k;
}

upstream_connection::upstream_connection(plain_stream&& s, std::string key)
    : stream_(std::in_place_index<0>, std::move(s)), key_(std::move(key)) {}

upstream_connection::upstream_connection(tls_stream&& s, std::string key)
    : stream_(std::in_place_index<1>, std::move(s)), key_(std::move(key)) {}

beast::tcp_stream& upstream_connection::tcp() {
    if (auto* p = std::get_if<0>(&stream_)) return *p;
    return std::get<1>(stream_).next_layer();
}

bool upstream_connection::looks_alive() {
    auto& sock = tcp().socket();
    if (!sock.is_open()) return false;
    // Bytes OpenSSL already read ahead after the last response: a second response nobody asked
    // for (or the start of one). Reusing the connection would hand them to the next request.
    if (auto* t = std::get_if<1>(&stream_); t && SSL_has_pending(t->native_handle()) == 1) {
        return false;
    }
    char c;
    ssize_t n = ::recv(sock.native_handle(), &c, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n == 0) return false;  // orderly close by the peer
    // Unsolicited bytes on an idle HTTP/1.1 connection (for TLS, most likely close_notify)
    // mean it cannot be reused safely either.
    if (n > 0) return false;
    return errno == EAGAIN || errno == EWOULDBLOCK;
}

namespace {

// The IPv4 address itself, or the one an IPv4-mapped IPv6 address carries.
std::optional<asio::ip::address_v4> ipv4_of(const asio::ip::address& a) {
    if (a.is_v4()) return a.to_v4();
    if (a.to_v6().is_v4_mapped()) return asio::ip::make_address_v4(asio::ip::v4_mapped, a.to_v6());
    return std::nullopt;
}

bool is_link_local(const asio::ip::address& a) {
    if (auto v4 = ipv4_of(a)) {
        auto b = v4->to_bytes();
        return b[0] == 169 && b[1] == 254;
    }
    return a.to_v6().is_link_local();
}

bool is_private(const asio::ip::address& a) {
    if (auto v4 = ipv4_of(a)) {
        auto b = v4->to_bytes();
        return b[0] == 0 || b[0] == 10 || b[0] == 127 || (b[0] == 172 && (b[1] & 0xf0) == 16) ||
               (b[0] == 192 && b[1] == 168) || (b[0] == 100 && (b[1] & 0xc0) == 64);
    }
    const auto v6 = a.to_v6();
    return v6.is_loopback() || v6.is_unspecified() ||
           (v6.to_bytes()[0] & 0xfe) == 0xfc;  // unique local fc00::/7
}

bool same_host_endpoint(const tcp::endpoint& dest, const tcp::endpoint& listener) {
    if (dest.port() != listener.port()) return false;
    if (listener.address().is_unspecified()) return dest.address().is_loopback();
    return dest.address() == listener.address();
}

bool allowed(const tcp::endpoint& ep, const destination_policy* policy) {
    if (!policy) return true;
    if (policy->forbid_link_local && is_link_local(ep.address())) return false;
    if (policy->forbid_private && is_private(ep.address())) return false;
    for (const auto& l : policy->forbidden) {
        if (same_host_endpoint(ep, l)) return false;
    }
    return true;
}

// Resolves and connects within `timeout`. Errors: dns_error, connection_refused,
// connect_timeout, destination_prohibited.
asio::awaitable<std::pair<error_code, beast::tcp_stream>> connect_tcp_impl(
    asio::any_io_executor ex, const std::string& host, std::uint16_t port,
    const destination_policy* policy, std::chrono::milliseconds timeout) {
    const auto deadline = clock_type::now() + timeout;
    beast::tcp_stream stream(ex);

    // The resolver has no timeout of its own: a timer cancels it (getaddrinfo runs on Asio's
    // resolver thread, so the I/O thread never blocks).
    auto resolver = std::make_shared<tcp::resolver>(ex);
    asio::steady_timer timer(ex, deadline);
    timer.async_wait([w = std::weak_ptr<tcp::resolver>(resolver)](error_code ec) {
        if (!ec) {
            if (auto r = w.lock()) r->cancel();
        }
    });
    auto [rec, results] =
        co_await resolver->async_resolve(host, std::to_string(port), tcp::resolver::numeric_service,
                                         asio::as_tuple(asio::use_awaitable));
    timer.cancel();
    if (rec) {
        if (rec == asio::error::operation_aborted && clock_type::now() >= deadline) {
            co_return std::pair{make_error_code(errc::connect_timeout), std::move(stream)};
        }
        co_return std::pair{make_error_code(errc::dns_error), std::move(stream)};
    }

    std::vector<tcp::endpoint> endpoints;
    for (const auto& r : results) {
        if (allowed(r.endpoint(), policy)) endpoints.push_back(r.endpoint());
    }
    if (endpoints.empty()) {
        co_return std::pair{make_error_code(errc::destination_prohibited), std::move(stream)};
    }

    stream.expires_at(deadline);
    auto [cec, ep] = co_await stream.async_connect(endpoints, asio::as_tuple(asio::use_awaitable));
    (void)ep;
    if (cec) {
        errc e = cec == beast::error::timeout ? errc::connect_timeout : errc::connection_refused;
        co_return std::pair{make_error_code(e), std::move(stream)};
    }
    stream.socket().set_option(tcp::no_delay(true));
    stream.expires_never();
    co_return std::pair{error_code{}, std::move(stream)};
}

}  // namespace

upstream_pool::upstream_pool(asio::any_io_executor ex, asio::ssl::context& tls, pool_options opts)
    : ex_(std::move(ex)), tls_(tls), opts_(opts), sweep_timer_(ex_) {}

upstream_pool::~upstream_pool() = default;

asio::awaitable<std::pair<error_code, beast::tcp_stream>> upstream_pool::connect_tcp(
    const std::string& host, std::uint16_t port, const destination_policy* policy) {
    co_return co_await connect_tcp_impl(ex_, host, port, policy, opts_.connect_timeout);
}

asio::awaitable<upstream_pool::acquire_result> upstream_pool::acquire(
    const upstream_endpoint& ep, const destination_policy* policy, bool allow_reuse) {
    const std::string key = ep.key();
    if (allow_reuse) {
        auto it = idle_.find(key);
        if (it != idle_.end()) {
            auto& list = it->second;
            const auto now = clock_type::now();
            while (!list.empty()) {
                auto conn = std::move(list.back());
                list.pop_back();
                if (now - conn->idle_since < opts_.idle_timeout && conn->looks_alive()) {
                    conn->reused = true;
                    co_return acquire_result{error_code{}, std::move(conn)};
                }
            }
        }
    }

    const auto deadline = clock_type::now() + opts_.connect_timeout;
    auto [ec, tcp_stream] =
        co_await connect_tcp_impl(ex_, ep.host, ep.port, policy, opts_.connect_timeout);
    if (ec) co_return acquire_result{ec, nullptr};
    if (!ep.tls) {
        co_return acquire_result{error_code{},
                                 std::make_unique<upstream_connection>(std::move(tcp_stream), key)};
    }

    // The endpoint's session slot; a new one joins the map only once a handshake succeeded.
    std::shared_ptr<tls_session_slot> slot;  // a copy: the entry may be evicted meanwhile
    if (auto it = sessions_.find(key); it != sessions_.end()) slot = it->second;
    if (!slot) slot = std::make_shared<tls_session_slot>();
    slot->last_used = ++session_uses_;
    upstream_connection::tls_stream stream(std::move(tcp_stream), tls_, slot);
    if (!prepare_client_tls(stream.native_handle(), ep.host)) {
        co_return acquire_result{make_error_code(errc::tls_protocol_error), nullptr};
    }
    // The handshake shares the connect deadline; whichever finishes first cancels the other.
    asio::steady_timer timer(ex_, deadline);
    auto done = co_await (stream.async_handshake(asio::as_tuple(asio::use_awaitable)) ||
                          timer.async_wait(asio::as_tuple(asio::use_awaitable)));
    if (done.index() == 1) {
        co_return acquire_result{make_error_code(errc::connect_timeout), nullptr};
    }
    if (auto [hec, n] = std::get<0>(done); hec) {
        slot->clear();  // whatever failed, the next attempt starts afresh
        errc e = is_certificate_failure(stream.native_handle()) ? errc::tls_certificate_error
                                                                : errc::tls_protocol_error;
        co_return acquire_result{make_error_code(e), nullptr};
    }
    if (!sessions_.contains(key)) {
        if (sessions_.size() >= max_sessions) {  // forget the endpoint unused the longest
            auto lru = std::min_element(sessions_.begin(), sessions_.end(), [](auto& a, auto& b) {
                return a.second->last_used < b.second->last_used;
            });
            sessions_.erase(lru);
        }
        sessions_.emplace(key, slot);
    }
    co_return acquire_result{error_code{},
                             std::make_unique<upstream_connection>(std::move(stream), key)};
}

void upstream_pool::release(std::unique_ptr<upstream_connection> conn) {
    if (shut_down_ || !conn || !conn->tcp().socket().is_open()) return;
    auto& list = idle_[conn->key()];
    if (list.size() >= opts_.max_idle_per_endpoint) return;  // closes it
    conn->tcp().expires_never();
    // Empty here; a parked connection keeps no body-sized read buffer.
    if (conn->buffer.capacity() > 4096) conn->buffer.shrink_to_fit();
    conn->idle_since = clock_type::now();
    list.push_back(std::move(conn));
    if (!sweeping_) {
        sweeping_ = true;
        asio::co_spawn(ex_, sweep_loop(), asio::detached);
    }
}

std::size_t upstream_pool::idle_count() const {
    std::size_t n = 0;
    for (const auto& [k, list] : idle_)
        n += list.size();
    return n;
}

void upstream_pool::shutdown() {
    shut_down_ = true;
    idle_.clear();
    sweep_timer_.cancel();
}

asio::awaitable<void> upstream_pool::sweep_loop() {
    // Closes expired and peer-closed idle connections so that they do not hold file
    // descriptors; runs while anything is parked.
    const auto period =
        std::max<std::chrono::milliseconds>(opts_.idle_timeout / 4, std::chrono::milliseconds(250));
    while (!shut_down_ && idle_count() > 0) {
        sweep_timer_.expires_after(period);
        auto [ec] = co_await sweep_timer_.async_wait(asio::as_tuple(asio::use_awaitable));
        if (ec || shut_down_) break;
        const auto now = clock_type::now();
        for (auto it = idle_.begin(); it != idle_.end();) {
            auto& list = it->second;
            std::erase_if(list, [&](const std::unique_ptr<upstream_connection>& c) {
                return now - c->idle_since >= opts_.idle_timeout || !c->looks_alive();
            });
            it = list.empty() ? idle_.erase(it) : std::next(it);
        }
    }
    sweeping_ = false;
}

}  // namespace msiproxy
