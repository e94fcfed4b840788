// test_client: each blocking call runs one coroutine to completion on the connection's private
// io_context; tcp_stream::expires_after bounds every step, so nothing can hang a test forever.
#include "support/test_client.hpp"

#include <array>
#include <exception>
#include <ostream>
#include <type_traits>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "support/byte_pattern.hpp"
#include "support/tls_certs.hpp"

namespace msiproxy::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using boost::system::result;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

// Runs `aw` on `ioc` until it completes; exceptions propagate to the caller.
template <class T>
T run_sync(asio::io_context& ioc, asio::awaitable<T> aw) {
    std::optional<T> out;
    std::exception_ptr failure;
    asio::co_spawn(ioc, std::move(aw), [&](std::exception_ptr e, T value) {
        failure = e;
        if (!e) out.emplace(std::move(value));
    });
    ioc.restart();
    ioc.run();
    if (failure) std::rethrow_exception(failure);
    return std::move(*out);
}

}  // namespace

struct client_connection::impl {
    asio::io_context ioc{1};
    std::chrono::milliseconds timeout;
    std::optional<asio::ssl::context> ssl;
    std::unique_ptr<beast::tcp_stream> plain;
    std::unique_ptr<beast::ssl_stream<beast::tcp_stream>> tls;
    beast::flat_buffer buffer = [] {
        // Beast reads as much as the buffer's free capacity (at least 512 bytes): without room
        // reserved, a 256 MiB body would take half a million 512-byte reads.
        beast::flat_buffer b;
        b.reserve(64 * 1024);
        return b;
    }();
    std::vector<char> chunk = std::vector<char>(64 * 1024);
    // A read saw the end of the stream. Asio 1.81 does not retry a socket that returned EOF
    // until epoll reports it again, which edge-triggered epoll never does: a second read would
    // wait for its timeout, so wait_closed() must not ask twice.
    bool saw_eof = false;

    // Notes an error that means the peer closed its side.
    template <class T>
    T note(T r) {
        error_code ec;
        if constexpr (std::is_same_v<T, error_code>)
            ec = r;
        else if (!r)
            ec = r.error();
        if (ec == asio::error::eof || ec == http::error::end_of_stream ||
            ec == http::error::partial_message)
            saw_eof = true;
        return r;
    }

    beast::tcp_stream& lowest() { return tls ? beast::get_lowest_layer(*tls) : *plain; }

    // Calls f(stream) with whichever stream this connection has.
    template <class F>
    auto with_stream(F&& f) {
        return tls ? f(*tls) : f(*plain);
    }

    template <class Stream>
    asio::awaitable<error_code> write_all(Stream& s, std::string_view bytes) {
        lowest().expires_after(timeout);
        auto [ec, n] = co_await asio::async_write(s, asio::buffer(bytes), use_tuple);
        co_return ec;
    }

    template <class Stream>
    asio::awaitable<result<http_response>> read(Stream& s, read_options o) {
        http::response_parser<http::buffer_body> p;
        p.body_limit(boost::none);
        p.header_limit(1024 * 1024);
        if (o.skip_body) p.skip(true);
        lowest().expires_after(o.timeout);
        auto [ec, n] = co_await http::async_read_header(s, buffer, p, use_tuple);
        if (ec) co_return ec;

        http_response r;
        auto& msg = p.get();
        r.status = msg.result_int();
        r.reason = std::string(msg.reason());
        r.version = msg.version();
        for (const auto& f : msg)
            r.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
        r.chunked = msg.chunked();

        checksum sum;
        while (!p.is_done()) {
            msg.body().data = chunk.data();
            msg.body().size = chunk.size();
            lowest().expires_after(o.timeout);
            auto [rec, rn] = co_await http::async_read(s, buffer, p, use_tuple);
            if (rec == http::error::need_buffer) rec = {};
            const std::size_t got = chunk.size() - msg.body().size;
            sum.update(chunk.data(), got);
            if (o.keep_body) {
                if (r.body.size() + got > o.body_limit) co_return http::error::body_limit;
                r.body.append(chunk.data(), got);
            }
            if (rec) co_return rec;
        }
        r.body_bytes = sum.bytes();
        r.body_checksum = sum.value();
        r.keep_alive = msg.keep_alive();
        co_return r;
    }

    template <class Stream>
    asio::awaitable<result<http_response>> read_final(Stream& s, read_options o) {
        for (;;) {
            auto r = co_await read(s, o);
            if (!r || r->status / 100 != 1 || r->status == 101) co_return r;
        }
    }

    template <class Stream>
    asio::awaitable<result<http_response>> upload(Stream& s, upload_request up) {
        std::string head = up.method + " " + up.target + " HTTP/1.1\r\n";
        const std::string host = up.host.empty() ? authority_of(up.target) : up.host;
        head += "Host: " + host + "\r\n";
        for (const auto& [k, v] : up.headers)
            head += k + ": " + v + "\r\n";
        head += up.chunked ? std::string("Transfer-Encoding: chunked\r\n")
                           : "Content-Length: " + std::to_string(up.bytes) + "\r\n";
        if (up.expect_continue) head += "Expect: 100-continue\r\n";
        head += "\r\n";
        if (auto ec = co_await write_all(s, head)) co_return ec;

        if (up.expect_continue) {
            auto interim = co_await read(s, up.response);
            if (!interim) co_return interim;
            if (interim->status != 100) co_return interim;  // refused before the body
        }

        std::vector<char> piece(up.piece);
        std::uint64_t sent = 0;
        error_code wec;
        while (sent < up.bytes && !wec) {
            const auto k =
                static_cast<std::size_t>(std::min<std::uint64_t>(piece.size(), up.bytes - sent));
            fill_pattern(piece.data(), k, sent);
            lowest().expires_after(timeout);
            if (up.chunked) {
                char size_line[32];
                const int m = std::snprintf(size_line, sizeof size_line, "%zx\r\n", k);
                const std::array<asio::const_buffer, 3> parts{
                    asio::buffer(size_line, static_cast<std::size_t>(m)),
                    asio::buffer(piece.data(), k), asio::buffer("\r\n", 2)};
                auto [ec, n] = co_await asio::async_write(s, parts, use_tuple);
                wec = ec;
            } else {
                auto [ec, n] =
                    co_await asio::async_write(s, asio::buffer(piece.data(), k), use_tuple);
                wec = ec;
            }
            sent += k;
        }
        if (!wec && up.chunked) wec = co_await write_all(s, "0\r\n\r\n");
        // A server may answer early (an error) and stop reading; prefer its answer to EPIPE.
        auto r = co_await read_final(s, up.response);
        if (!r && wec) co_return wec;
        co_return r;
    }

    template <class Stream>
    asio::awaitable<error_code> drain(Stream& s, std::chrono::milliseconds t) {
        if (saw_eof) co_return asio::error::eof;
        lowest().expires_after(t);
        for (;;) {
            auto [ec, n] = co_await s.async_read_some(asio::buffer(chunk), use_tuple);
            if (ec) co_return ec;
        }
    }
};

client_connection::client_connection(std::uint16_t port, std::chrono::milliseconds timeout,
                                     std::optional<client_tls> tls)
    : impl_(std::make_unique<impl>()) {
    impl_->timeout = timeout;
    const tcp::endpoint ep(asio::ip::make_address_v4("127.0.0.1"), port);
    if (!tls) {
        impl_->plain = std::make_unique<beast::tcp_stream>(impl_->ioc);
        impl_->plain->expires_after(timeout);
        run_sync(impl_->ioc, [](impl& self, tcp::endpoint ep) -> asio::awaitable<int> {
            co_await self.plain->async_connect(ep, asio::use_awaitable);
            co_return 0;
        }(*impl_, ep));
        return;
    }
    impl_->ssl.emplace(make_client_context(tls->ca_pem));
    impl_->tls = std::make_unique<beast::ssl_stream<beast::tcp_stream>>(impl_->ioc, *impl_->ssl);
    auto& s = *impl_->tls;
    if (!SSL_set_tlsext_host_name(s.native_handle(), tls->server_name.c_str()))
        throw std::runtime_error("SNI");
    s.set_verify_callback(asio::ssl::host_name_verification(tls->server_name));
    impl_->lowest().expires_after(timeout);
    run_sync(impl_->ioc, [](impl& self, tcp::endpoint ep) -> asio::awaitable<int> {
        co_await self.lowest().async_connect(ep, asio::use_awaitable);
        co_await self.tls->async_handshake(asio::ssl::stream_base::client, asio::use_awaitable);
        co_return 0;
    }(*impl_, ep));
}

client_connection::~client_connection() = default;

error_code client_connection::send(std::string_view raw) {
    return impl_->with_stream(
        [&](auto& s) { return run_sync(impl_->ioc, impl_->write_all(s, raw)); });
}

result<http_response> client_connection::read_response(const read_options& options) {
    return impl_->note(
        impl_->with_stream([&](auto& s) { return run_sync(impl_->ioc, impl_->read(s, options)); }));
}

result<http_response> client_connection::request(std::string_view raw,
                                                 const read_options& options) {
    if (auto ec = send(raw)) return ec;
    return impl_->note(impl_->with_stream(
        [&](auto& s) { return run_sync(impl_->ioc, impl_->read_final(s, options)); }));
}

result<http_response> client_connection::upload(const upload_request& up) {
    return impl_->note(
        impl_->with_stream([&](auto& s) { return run_sync(impl_->ioc, impl_->upload(s, up)); }));
}

bool client_connection::wait_closed(std::chrono::milliseconds timeout) {
    // Bytes already buffered by the parser do not count as "still open".
    const error_code ec =
        impl_->with_stream([&](auto& s) { return run_sync(impl_->ioc, impl_->drain(s, timeout)); });
    return ec != beast::error::timeout;
}

result<http_response> http_exchange(std::uint16_t port, std::string_view raw,
                                    const read_options& options) {
    client_connection c(port, options.timeout);
    return c.request(raw, options);
}

std::ostream& operator<<(std::ostream& os, const http_response& r) {
    return os << "HTTP " << r.status << ", " << r.body_bytes << " body bytes";
}

std::string authority_of(std::string_view url) {
    const auto scheme = url.find("://");
    if (scheme == std::string_view::npos) return {};
    auto rest = url.substr(scheme + 3);
    return std::string(rest.substr(0, rest.find_first_of("/?#")));
}

std::string make_request(std::string_view method, std::string_view target, std::string_view host,
                         const header_list& headers, std::string_view body) {
    std::string out;
    out.append(method).append(" ").append(target).append(" HTTP/1.1\r\n");
    if (!count_header(headers, "Host")) out.append("Host: ").append(host).append("\r\n");
    for (const auto& [k, v] : headers)
        out.append(k).append(": ").append(v).append("\r\n");
    if (!body.empty() && !count_header(headers, "Content-Length") &&
        !count_header(headers, "Transfer-Encoding"))
        out.append("Content-Length: ").append(std::to_string(body.size())).append("\r\n");
    out.append("\r\n").append(body);
    return out;
}

std::string proxy_request(std::string_view method, std::string_view absolute_url,
                          const header_list& headers, std::string_view body) {
    return make_request(method, absolute_url, authority_of(absolute_url), headers, body);
}

std::string origin_request(std::string_view method, std::string_view path, std::string_view host,
                           const header_list& headers, std::string_view body) {
    return make_request(method, path, host, headers, body);
}

}  // namespace msiproxy::test
