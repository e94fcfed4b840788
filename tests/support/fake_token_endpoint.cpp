// fake_token_endpoint: a Beast accept loop and one coroutine per connection, recording requests.
#include "support/fake_token_endpoint.hpp"

#include <deque>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl/ssl_stream.hpp>
#include <boost/url/parse.hpp>
#include <boost/url/url_view.hpp>

namespace msiproxy::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
}

std::string form_decode(std::string_view s) {
    std::string out;
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '+') {
            out += ' ';
        } else if (s[i] == '%' && i + 2 < s.size()) {
            out += static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16));
            i += 2;
        } else {
            out += s[i];
        }
    }
    return out;
}

}  // namespace

std::string endpoint_request::header(std::string_view name) const {
    std::string n = lower(name);
    for (const auto& [k, v] : headers) {
        if (k == n) return v;
    }
    return {};
}

bool endpoint_request::has_header(std::string_view name) const {
    std::string n = lower(name);
    for (const auto& h : headers) {
        if (h.first == n) return true;
    }
    return false;
}

std::string endpoint_request::query_value(std::string_view key) const {
    for (const auto& [k, v] : query) {
        if (k == key) return v;
    }
    return {};
}

bool endpoint_request::has_query(std::string_view key) const {
    for (const auto& q : query) {
        if (q.first == key) return true;
    }
    return false;
}

std::vector<std::pair<std::string, std::string>> endpoint_request::form() const {
    std::vector<std::pair<std::string, std::string>> out;
    std::size_t pos = 0;
    while (pos <= body.size() && !body.empty()) {
        std::size_t end = body.find('&', pos);
        if (end == std::string::npos) end = body.size();
        std::string_view field = std::string_view(body).substr(pos, end - pos);
        auto eq = field.find('=');
        out.emplace_back(form_decode(field.substr(0, eq)),
                         eq == std::string_view::npos ? "" : form_decode(field.substr(eq + 1)));
        pos = end + 1;
    }
    return out;
}

std::string endpoint_request::form_value(std::string_view key) const {
    for (const auto& [k, v] : form()) {
        if (k == key) return v;
    }
    return {};
}

struct fake_token_endpoint::state {
    explicit state(asio::io_context& ioc)
        : acceptor(ioc, tcp::endpoint(asio::ip::make_address("127.0.0.1"), 0)) {}
    tcp::acceptor acceptor;
    asio::ssl::context* tls = nullptr;
    std::deque<canned_reply> replies;
    fake_token_endpoint* owner = nullptr;
};

fake_token_endpoint::fake_token_endpoint(asio::io_context& ioc, asio::ssl::context* tls)
    : state_(std::make_shared<state>(ioc)),
      requests_(std::make_shared<std::vector<endpoint_request>>()) {
    state_->tls = tls;
    state_->owner = this;
    fallback.body = token_body();
    auto st = state_;
    auto reqs = requests_;
    auto serve = [st, reqs](auto& stream) -> asio::awaitable<void> {
        beast::flat_buffer buf;
        http::request<http::string_body> req;
        auto [rec, n] =
            co_await http::async_read(stream, buf, req, asio::as_tuple(asio::use_awaitable));
        (void)n;
        if (rec || !st->owner) co_return;
        endpoint_request r;
        r.method = std::string(req.method_string());
        r.target = std::string(req.target());
        if (auto u = boost::urls::parse_origin_form(r.target)) {
            r.path = std::string(u->path());
            for (auto p : u->params())
                r.query.emplace_back(p.key, p.value);
        }
        for (const auto& f : req)
            r.headers.emplace_back(lower(f.name_string()), std::string(f.value()));
        r.body = req.body();
        reqs->push_back(r);
        fake_token_endpoint& self = *st->owner;
        canned_reply reply;
        if (self.handler) {
            reply = self.handler(r);
        } else if (!st->replies.empty()) {
            reply = std::move(st->replies.front());
            st->replies.pop_front();
        } else {
            reply = self.fallback;
        }
        http::response<http::string_body> res{static_cast<http::status>(reply.status), 11};
        res.set(http::field::content_type, "application/json");
        for (const auto& [k, v] : reply.headers)
            res.set(k, v);
        res.body() = reply.body;
        res.keep_alive(false);
        res.prepare_payload();
        co_await http::async_write(stream, res, asio::as_tuple(asio::use_awaitable));
    };
    asio::co_spawn(
        ioc,
        [st, serve]() -> asio::awaitable<void> {
            for (;;) {
                auto [ec, sock] =
                    co_await st->acceptor.async_accept(asio::as_tuple(asio::use_awaitable));
                if (ec) co_return;
                asio::co_spawn(
                    st->acceptor.get_executor(),
                    [st, serve, s = std::move(sock)]() mutable -> asio::awaitable<void> {
                        beast::tcp_stream tcp(std::move(s));
                        if (st->tls) {
                            beast::ssl_stream<beast::tcp_stream> tls(std::move(tcp), *st->tls);
                            auto [hec] =
                                co_await tls.async_handshake(asio::ssl::stream_base::server,
                                                             asio::as_tuple(asio::use_awaitable));
                            if (hec) co_return;
                            co_await serve(tls);
                            co_await tls.async_shutdown(asio::as_tuple(asio::use_awaitable));
                        } else {
                            co_await serve(tcp);
                            beast::error_code ignored;
                            tcp.socket().shutdown(tcp::socket::shutdown_send, ignored);
                        }
                    },
                    asio::detached);
            }
        },
        asio::detached);
}

fake_token_endpoint::~fake_token_endpoint() {
    state_->owner = nullptr;
    stop();
}

std::uint16_t fake_token_endpoint::port() const {
    return state_->acceptor.local_endpoint().port();
}

std::string fake_token_endpoint::url(std::string_view path) const {
    return std::string(state_->tls ? "https" : "http") + "://127.0.0.1:" + std::to_string(port()) +
           std::string(path);
}

void fake_token_endpoint::push(canned_reply r) {
    state_->replies.push_back(std::move(r));
}

void fake_token_endpoint::stop() {
    beast::error_code ignored;
    state_->acceptor.close(ignored);
}

std::string fake_token_endpoint::token_body(std::string_view token, int expires_in) {
    return "{\"access_token\":\"" + std::string(token) + "\",\"expires_in\":\"" +
           std::to_string(expires_in) + "\",\"token_type\":\"Bearer\"}";
}

}  // namespace msiproxy::test
