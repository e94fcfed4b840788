// fetch_token: the common request -> outcome step of all token sources.
#include "identity/sources/source_util.hpp"

#include <boost/url/parse.hpp>

namespace msiproxy {

boost::asio::awaitable<fetch_outcome> fetch_token(boost::asio::any_io_executor ex,
                                                  boost::asio::ssl::context& tls,
                                                  fetch_request req) {
    // Scheme, host and path name the endpoint in messages; the query may carry identity ids.
    std::string where = req.url;
    if (auto u = boost::urls::parse_absolute_uri(req.url)) {
        where = std::string(u->scheme()) + "://" + std::string(u->encoded_host_and_port()) +
                std::string(u->encoded_path());
    }
    auto [ec, res] = co_await http_fetch(std::move(ex), tls, std::move(req));
    if (ec) {
        fetch_failure f;
        f.kind = failure_kind::unreachable;
        f.message = where + ": " + ec.message();
        co_return f;
    }
    if (res.status < 200 || res.status > 299) {
        auto f = classify_http_failure(res.status, res.body, res.header("retry-after"));
        f.message = where + ": " + f.message;
        co_return f;
    }
    auto out = parse_token_response(res.body, std::chrono::system_clock::now());
    if (auto* f = std::get_if<fetch_failure>(&out)) f->message = where + ": " + f->message;
    co_return out;
}

}  // namespace msiproxy
