// The admin listener: accept loop and one coroutine per connection answering /healthz, /readyz,
// /metrics and /tokens. Runs on the caller's (single-threaded) executor; never handles tokens.
#include "admin/admin_server.hpp"

#include <chrono>
#include <exception>
#include <memory>
#include <set>
#include <string>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "common/time_format.hpp"
#include "log/logging.hpp"

namespace msiproxy {

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr auto header_timeout = std::chrono::seconds(10);
constexpr auto write_timeout = std::chrono::seconds(10);
constexpr std::uint32_t header_limit = 8 * 1024;
constexpr std::uint64_t body_limit = 8 * 1024;  // GET needs none; a small one is drained
constexpr auto accept_backoff = std::chrono::milliseconds(100);

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

using response = http::response<http::string_body>;

// The connections of one server, so that stopping the server also ends keep-alive sessions
// instead of leaving them parked for up to header_timeout. Touched only on the I/O thread.
struct session_set {
    std::set<beast::tcp_stream*> live;
    bool stopping = false;

    void stop_all() {
        stopping = true;
        for (auto* s : live)
            s->cancel();
    }
};

nlohmann::json time_or_null(const std::optional<std::chrono::system_clock::time_point>& tp) {
    if (!tp) return nullptr;
    return to_rfc3339(*tp);
}

nlohmann::json string_or_null(const std::string& s) {
    if (s.empty()) return nullptr;
    return s;
}

response make_response(http::status status, unsigned version, std::string_view content_type,
                       std::string body) {
    response res{status, version};
    res.set(http::field::content_type, content_type);
    res.set(http::field::cache_control, "no-store");
    res.body() = std::move(body);
    return res;
}

response json_response(http::status status, unsigned version, const nlohmann::json& j) {
    // replace: a last_error quoting a broken upstream body must not make /tokens fail.
    return make_response(status, version, "application/json",
                         j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) + "\n");
}

response handle_readyz(const admin_context& ctx, unsigned version) {
    const bool listening = ctx.listening ? ctx.listening() : false;
    auto missing = nlohmann::json::array();
    if (ctx.tokens) {
        for (const auto& t : ctx.tokens()) {
            if (t.usable) continue;
            missing.push_back({{"identity", t.identity},
                               {"resource", t.resource},
                               {"state", t.state},
                               {"last_error", string_or_null(t.last_error)}});
        }
    }
    if (listening && missing.empty()) {
        return make_response(http::status::ok, version, "text/plain; charset=utf-8", "ready\n");
    }
    return json_response(http::status::service_unavailable, version,
                         {{"ready", false}, {"listening", listening}, {"missing", missing}});
}

response handle_tokens(const admin_context& ctx, unsigned version) {
    auto out = nlohmann::json::array();
    if (ctx.tokens) {
        // Field by field on purpose: whatever token_status grows, only these leave the process.
        for (const auto& t : ctx.tokens()) {
            out.push_back({{"identity", t.identity},
                           {"resource", t.resource},
                           {"state", t.state},
                           {"expires_on", time_or_null(t.expires_on)},
                           {"refresh_at", time_or_null(t.refresh_at)},
                           {"last_refresh", time_or_null(t.last_refresh)},
                           {"last_error", string_or_null(t.last_error)}});
        }
    }
    return json_response(http::status::ok, version, out);
}

response handle_request(const http::request<http::string_body>& req, const admin_context& ctx) {
    const unsigned version = req.version();
    std::string_view target = req.target();
    target = target.substr(0, target.find('?'));

    enum class endpoint { healthz, readyz, metrics, tokens, none };
    endpoint ep = endpoint::none;
    if (target == "/healthz") ep = endpoint::healthz;
    if (target == "/readyz") ep = endpoint::readyz;
    if (target == "/metrics") ep = endpoint::metrics;
    if (target == "/tokens") ep = endpoint::tokens;

    if (ep == endpoint::none) {
        return make_response(http::status::not_found, version, "text/plain; charset=utf-8",
                             "not found\n");
    }
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
        auto res = make_response(http::status::method_not_allowed, version,
                                 "text/plain; charset=utf-8", "method not allowed\n");
        res.set(http::field::allow, "GET, HEAD");
        return res;
    }
    switch (ep) {
        case endpoint::healthz:
            return make_response(http::status::ok, version, "text/plain; charset=utf-8", "ok\n");
        case endpoint::readyz:
            return handle_readyz(ctx, version);
        case endpoint::metrics:
            return make_response(http::status::ok, version,
                                 "text/plain; version=0.0.4; charset=utf-8",
                                 ctx.stats ? ctx.stats->render() : std::string());
        case endpoint::tokens:
            return handle_tokens(ctx, version);
        case endpoint::none:
            break;
    }
    return make_response(http::status::not_found, version, "text/plain; charset=utf-8",
                         "not found\n");
}

// Writes `res`; false when the connection is unusable afterwards.
asio::awaitable<bool> write_response(beast::tcp_stream& stream, response res, bool head) {
    res.prepare_payload();
    if (head) {
        // Content-Length of the GET answer, no body (RFC 9110 9.3.2).
        const auto length = res.body().size();
        res.body().clear();
        res.content_length(length);
    }
    stream.expires_after(write_timeout);
    auto [ec, n] = co_await http::async_write(stream, res, use_tuple);
    (void)n;
    co_return !ec;
}

asio::awaitable<void> run_session(beast::tcp_stream stream, admin_context ctx,
                                  std::shared_ptr<session_set> sessions) {
    sessions->live.insert(&stream);
    struct unregister {
        session_set& set;
        beast::tcp_stream* s;
        ~unregister() { set.live.erase(s); }
    } guard{*sessions, &stream};

    beast::flat_buffer buffer;
    while (!sessions->stopping) {
        http::request_parser<http::string_body> parser;
        parser.header_limit(header_limit);
        parser.body_limit(body_limit);

        // Also the keep-alive idle limit: the next request must arrive within it.
        stream.expires_after(header_timeout);
        auto [ec, n] = co_await http::async_read(stream, buffer, parser, use_tuple);
        (void)n;
        if (ec == http::error::header_limit || ec == http::error::body_limit) {
            auto res = make_response(ec == http::error::header_limit
                                         ? http::status::request_header_fields_too_large
                                         : http::status::payload_too_large,
                                     11, "text/plain; charset=utf-8", "request too large\n");
            res.keep_alive(false);
            co_await write_response(stream, std::move(res), false);
            break;
        }
        if (ec) {
            if (ec != http::error::end_of_stream && ec != asio::error::operation_aborted &&
                ec != beast::error::timeout) {
                spdlog::debug("admin: read failed: {}", ec.message());
            }
            break;
        }
        if (sessions->stopping) break;

        const auto& req = parser.get();
        response res;
        try {
            res = handle_request(req, ctx);
        } catch (const std::exception& e) {
            // A throwing callback costs this answer, not the connection or the server.
            log_rate_limited("admin.handler", spdlog::level::err,
                             std::string("admin: handler failed: ") + e.what());
            res = make_response(http::status::internal_server_error, req.version(),
                                "text/plain; charset=utf-8", "internal error\n");
        }
        const bool keep_alive = req.keep_alive();
        res.keep_alive(keep_alive);
        if (!co_await write_response(stream, std::move(res), req.method() == http::verb::head)) {
            break;
        }
        if (!keep_alive) break;
    }
    beast::error_code ignored;
    stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
}

}  // namespace

asio::awaitable<void> run_admin_server(tcp::acceptor acceptor, const admin_context& ctx) {
    auto executor = co_await asio::this_coro::executor;
    auto sessions = std::make_shared<session_set>();
    // However this coroutine ends (closed acceptor, cancellation, exception), end its sessions.
    struct stop_sessions {
        std::shared_ptr<session_set> set;
        ~stop_sessions() { set->stop_all(); }
    } guard{sessions};

    asio::steady_timer backoff(executor);
    for (;;) {
        auto [ec, socket] = co_await acceptor.async_accept(use_tuple);
        if (ec == asio::error::operation_aborted || !acceptor.is_open()) co_return;
        if (ec) {
            // EMFILE/ENFILE/ENOBUFS and the like: pending connections stay in the backlog.
            log_rate_limited("admin.accept", spdlog::level::warn,
                             "admin: accept failed: " + ec.message());
            backoff.expires_after(accept_backoff);
            auto [wait_ec] = co_await backoff.async_wait(use_tuple);
            if (wait_ec == asio::error::operation_aborted) co_return;
            continue;
        }
        asio::co_spawn(executor, run_session(beast::tcp_stream(std::move(socket)), ctx, sessions),
                       [](std::exception_ptr e) {
                           if (!e) return;
                           try {
                               std::rethrow_exception(e);
                           } catch (const std::exception& ex) {
                               log_rate_limited(
                                   "admin.session", spdlog::level::err,
                                   std::string("admin: connection failed: ") + ex.what());
                           } catch (...) {
                               log_rate_limited("admin.session", spdlog::level::err,
                                                "admin: connection failed");
                           }
                       });
    }
}

}  // namespace msiproxy
