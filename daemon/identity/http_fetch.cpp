// One-shot HTTP(S) exchange over a fresh connection from the upstream connect path.
#include "identity/http_fetch.hpp"

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>

#include "common/error.hpp"
#include "upstream/pool.hpp"

namespace msiproxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using boost::system::error_code;

std::string fetch_response::header(std::string_view name) const {
    for (const auto& [k, v] : headers) {
        if (k == name) return v;
    }
    return {};
}

asio::awaitable<std::pair<error_code, fetch_response>> http_fetch(asio::any_io_executor ex,
                                                                  asio::ssl::context& tls,
                                                                  fetch_request req) {
    fetch_response out;
    auto url = boost::urls::parse_absolute_uri(req.url);
    if (!url) co_return std::pair{make_error_code(errc::bad_request), std::move(out)};
    upstream_endpoint ep;
    ep.tls = url->scheme_id() == boost::urls::scheme::https;
    ep.host = std::string(url->host_address());
    ep.port = url->has_port() ? url->port_number() : (ep.tls ? 443 : 80);

    const auto deadline = std::chrono::steady_clock::now() + req.timeout;
    pool_options opts;
    opts.connect_timeout = req.timeout;
    upstream_pool pool(ex, tls, opts);
    auto [ec, conn] = co_await pool.acquire(ep, nullptr, false);
    if (ec) co_return std::pair{ec, std::move(out)};

    http::request<http::string_body> msg{http::string_to_verb(req.method),
                                         std::string(url->encoded_target()), 11};
    std::string host_header = std::string(url->encoded_host_and_port());
    msg.set(http::field::host, host_header);
    msg.set(http::field::user_agent, "msiproxy");
    for (const auto& [k, v] : req.headers)
        msg.set(k, v);
    if (!req.body.empty() || msg.method() == http::verb::post) {
        msg.body() = std::move(req.body);
        msg.prepare_payload();
    }
    msg.keep_alive(false);

    http::response_parser<http::string_body> parser;
    parser.body_limit(req.max_body);
    parser.header_limit(64 * 1024);
    conn->tcp().expires_at(deadline);
    error_code wec, rec;
    co_await conn->visit([&](auto& stream) -> asio::awaitable<void> {
        std::tie(wec, std::ignore) =
            co_await http::async_write(stream, msg, asio::as_tuple(asio::use_awaitable));
        if (wec) co_return;
        std::tie(rec, std::ignore) = co_await http::async_read(stream, conn->buffer, parser,
                                                               asio::as_tuple(asio::use_awaitable));
    });
    error_code fail = wec ? wec : rec;
    if (fail) {
        errc e = fail == beast::error::timeout ? errc::upstream_response_timeout
                                               : errc::upstream_protocol_error;
        co_return std::pair{make_error_code(e), std::move(out)};
    }
    auto& res = parser.get();
    out.status = res.result_int();
    for (const auto& f : res) {
        std::string name(f.name_string());
        for (char& c : name)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        out.headers.emplace_back(std::move(name), std::string(f.value()));
    }
    out.body = std::move(res.body());
    co_return std::pair{error_code{}, std::move(out)};
}

}  // namespace msiproxy
