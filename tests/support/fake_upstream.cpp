// fake_upstream: one coroutine per connection, the same session code over a plain tcp_stream or
// an ssl_stream. Response heads and bodies are written by hand (not Beast's serializer) so that
// HEAD, 204/304, chunked and until-EOF framing are exactly what the steering headers ask for.
#include "support/fake_upstream.hpp"

#include <array>
#include <charconv>
#include <sstream>
#include <vector>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>

#include "support/beast_helpers.hpp"
#include "support/byte_pattern.hpp"

namespace msiproxy::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using tls_stream = beast::ssl_stream<beast::tcp_stream>;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t io_chunk = 64 * 1024;

// What the x-fake-* headers of one request ask for.
struct steering {
    unsigned status = 200;
    std::optional<std::uint64_t> body_bytes;
    bool chunked = false;
    bool no_length = false;
    bool close = false;
    bool reset = false;
    bool echo = false;
    bool drop = false;  // close silently after the response (no Connection: close)
    std::optional<std::uint64_t> cut_after;  // reset the connection after this many body bytes
    bool trailing_garbage = false;  // unsolicited bytes right after the response, same write
    std::string www_authenticate;   // WWW-Authenticate response header, when not empty
    std::chrono::milliseconds delay{0};
};

std::optional<std::uint64_t> number_field(const http::request_header<>& h, std::string_view name) {
    const auto it = h.find(name);
    if (it == h.end()) return std::nullopt;
    const auto v = it->value();
    std::uint64_t out = 0;
    const auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
    if (ec != std::errc{} || p != v.data() + v.size()) return std::nullopt;
    return out;
}

bool flag_field(const http::request_header<>& h, std::string_view name) {
    const auto it = h.find(name);
    return it != h.end() && it->value() == "1";
}

steering read_steering(const http::request_header<>& h) {
    steering s;
    if (auto v = number_field(h, "x-fake-status"); v && *v >= 100 && *v <= 999)
        s.status = static_cast<unsigned>(*v);
    s.body_bytes = number_field(h, "x-fake-body-bytes");
    s.chunked = flag_field(h, "x-fake-chunked");
    s.no_length = flag_field(h, "x-fake-no-length");
    s.close = flag_field(h, "x-fake-close");
    s.reset = flag_field(h, "x-fake-reset");
    s.echo = flag_field(h, "x-fake-echo-headers");
    s.drop = flag_field(h, "x-fake-drop");
    s.cut_after = number_field(h, "x-fake-cut-after");
    s.trailing_garbage = flag_field(h, "x-fake-trailing-garbage");
    if (auto it = h.find("x-fake-www-authenticate"); it != h.end())
        s.www_authenticate = std::string(it->value());
    if (auto v = number_field(h, "x-fake-delay-ms")) s.delay = std::chrono::milliseconds(*v);
    return s;
}

bool expects_continue(const http::request_header<>& h) {
    const auto it = h.find(http::field::expect);
    return it != h.end() && beast::iequals(it->value(), "100-continue");
}

beast::tcp_stream& lowest(beast::tcp_stream& s) {
    return s;
}
beast::tcp_stream& lowest(tls_stream& s) {
    return beast::get_lowest_layer(s);
}

// Orderly close: TLS close_notify (so body-until-EOF is not a truncation), then FIN, then wait
// briefly for the peer's FIN so that closing does not turn unread bytes into a reset.
asio::awaitable<void> close_stream(tls_stream& s) {
    lowest(s).expires_after(std::chrono::seconds(2));
    co_await s.async_shutdown(use_tuple);
    lowest(s).close();
}

asio::awaitable<void> close_stream(beast::tcp_stream& s) {
    boost::system::error_code ec;
    s.socket().shutdown(tcp::socket::shutdown_send, ec);
    s.expires_after(std::chrono::seconds(2));
    std::array<char, 4096> sink;
    for (;;) {
        auto [rec, n] = co_await s.async_read_some(asio::buffer(sink), use_tuple);
        if (rec) break;
    }
    s.close();
}

}  // namespace

struct fake_upstream::session {
    fake_upstream& self;
    std::uint64_t id;
    std::vector<char> chunk = std::vector<char>(io_chunk);

    template <class Stream>
    asio::awaitable<void> run(Stream& stream) {
        beast::flat_buffer buffer;
        for (;;) {
            http::request_parser<http::buffer_body> parser;
            parser.body_limit(boost::none);
            parser.header_limit(1024 * 1024);
            auto [ec, n] = co_await http::async_read_header(stream, buffer, parser, use_tuple);
            if (ec) co_return;  // peer closed, or garbage: just drop the connection
            auto& req = parser.get();
            recorded_request rec = detail::record_head(req.base(), id);
            const steering s = read_steering(req.base());

            if (s.reset) {
                rec.body_complete = parser.is_done();
                self.log_.add(std::move(rec));
                lowest(stream).close();
                co_return;
            }
            // The interim response must come before we wait for body bytes, or a client that
            // honours Expect would wait for us while we wait for it.
            if (self.options_.send_100_continue && expects_continue(req.base()) &&
                !parser.is_done()) {
                static constexpr std::string_view cont = "HTTP/1.1 100 Continue\r\n\r\n";
                auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(cont), use_tuple);
                if (wec) co_return;
                ++self.continues_;
            }

            checksum sum;
            bool ok = true;
            while (!parser.is_done()) {
                req.body().data = chunk.data();
                req.body().size = chunk.size();
                auto [rec_ec, rn] = co_await http::async_read(stream, buffer, parser, use_tuple);
                if (rec_ec == http::error::need_buffer) rec_ec = {};
                sum.update(chunk.data(), chunk.size() - req.body().size);
                if (rec_ec) {
                    ok = false;
                    break;
                }
            }
            rec.body_bytes = sum.bytes();
            rec.body_checksum = sum.value();
            rec.body_complete = ok;

            const bool head = req.method() == http::verb::head;
            const bool keep_alive = ok && req.keep_alive() && !s.close && !s.no_length;
            std::string echo;
            if (s.echo) {
                std::ostringstream os;
                os << req.base();
                echo = os.str();
            }
            self.log_.add(std::move(rec));
            if (!ok) co_return;

            if (s.delay.count() > 0) {
                asio::steady_timer timer(co_await asio::this_coro::executor);
                timer.expires_after(s.delay);
                co_await timer.async_wait(use_tuple);
            }
            if (!co_await respond(stream, s, head, keep_alive, echo)) co_return;
            if (!keep_alive || s.drop) {
                co_await close_stream(stream);
                co_return;
            }
        }
    }

    template <class Stream>
    asio::awaitable<bool> respond(Stream& stream, const steering& s, bool head, bool keep_alive,
                                  const std::string& echo) {
        const bool bodiless_status = s.status / 100 == 1 || s.status == 204 || s.status == 304;
        std::string fixed_body = "ok";
        if (s.echo) fixed_body = echo;
        const bool pattern = !s.echo && s.body_bytes.has_value();
        const std::uint64_t length = pattern ? *s.body_bytes : fixed_body.size();

        std::string out = "HTTP/1.1 " + std::to_string(s.status) + " " +
                          std::string(http::obsolete_reason(http::int_to_status(s.status))) +
                          "\r\nServer: fake-upstream\r\n";
        if (!bodiless_status) {
            if (s.chunked)
                out += "Transfer-Encoding: chunked\r\n";
            else if (!s.no_length)
                out += "Content-Length: " + std::to_string(length) + "\r\n";
            out += "Content-Type: application/octet-stream\r\n";
        }
        if (!keep_alive) out += "Connection: close\r\n";
        if (!s.www_authenticate.empty()) out += "WWW-Authenticate: " + s.www_authenticate + "\r\n";
        out += "\r\n";
        if (s.trailing_garbage && !pattern && !s.chunked && !head && !bodiless_status) {
            // A broken upstream: a second, unrequested response right behind the first, in a
            // write (for TLS, a record) of its own. No Nagle delay: the bytes must arrive before
            // the proxy sends the next request on this connection, or nothing could tell them
            // from that request's response.
            boost::system::error_code nec;
            lowest(stream).socket().set_option(tcp::no_delay(true), nec);
            out += fixed_body;
            auto [ec, n] = co_await asio::async_write(stream, asio::buffer(out), use_tuple);
            if (ec) co_return false;
            const std::string_view extra = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nevil!";
            auto [xec, xn] = co_await asio::async_write(stream, asio::buffer(extra), use_tuple);
            co_return !xec;
        }
        auto [ec, n] = co_await asio::async_write(stream, asio::buffer(out), use_tuple);
        if (ec) co_return false;
        if (head || bodiless_status) co_return true;

        std::uint64_t sent = 0;
        while (sent < length) {
            if (s.cut_after && sent >= *s.cut_after) {
                // RST rather than FIN: the peer must not mistake this for an orderly end.
                boost::system::error_code ec;
                lowest(stream).socket().set_option(asio::socket_base::linger(true, 0), ec);
                lowest(stream).close();
                co_return false;
            }
            const std::uint64_t limit = s.cut_after ? std::min(length, *s.cut_after) : length;
            const auto k =
                static_cast<std::size_t>(std::min<std::uint64_t>(io_chunk, limit - sent));
            if (pattern)
                fill_pattern(chunk.data(), k, sent);
            else
                std::memcpy(chunk.data(), fixed_body.data() + sent, k);
            if (s.chunked) {
                char size_line[32];
                const int m = std::snprintf(size_line, sizeof size_line, "%zx\r\n", k);
                const std::array<asio::const_buffer, 3> parts{
                    asio::buffer(size_line, static_cast<std::size_t>(m)),
                    asio::buffer(chunk.data(), k), asio::buffer("\r\n", 2)};
                auto [wec, wn] = co_await asio::async_write(stream, parts, use_tuple);
                if (wec) co_return false;
            } else {
                auto [wec, wn] =
                    co_await asio::async_write(stream, asio::buffer(chunk.data(), k), use_tuple);
                if (wec) co_return false;
            }
            sent += k;
        }
        if (s.chunked) {
            auto [wec, wn] =
                co_await asio::async_write(stream, asio::buffer("0\r\n\r\n", 5), use_tuple);
            if (wec) co_return false;
        }
        co_return true;
    }
};

fake_upstream::fake_upstream(fake_upstream_options options)
    : options_(std::move(options)), server_([this](tcp::socket socket, std::uint64_t id) {
          return serve(std::move(socket), id);
      }) {
    if (options_.tls)
        ssl_ = std::make_unique<asio::ssl::context>(make_server_context(*options_.tls));
    server_.start();
}

fake_upstream::~fake_upstream() {
    server_.stop();
}

asio::awaitable<void> fake_upstream::serve(tcp::socket socket, std::uint64_t id) {
    session s{*this, id};
    if (!ssl_) {
        beast::tcp_stream stream(std::move(socket));
        co_await s.run(stream);
        co_return;
    }
    tls_stream stream(std::move(socket), *ssl_);
    lowest(stream).expires_after(std::chrono::seconds(10));
    auto [ec] = co_await stream.async_handshake(asio::ssl::stream_base::server, use_tuple);
    if (ec) co_return;  // e.g. the proxy rejected our certificate: no request is recorded
    lowest(stream).expires_never();
    ++handshakes_;
    if (SSL_session_reused(stream.native_handle()) == 1) ++resumptions_;
    co_await s.run(stream);
}

}  // namespace msiproxy::test
