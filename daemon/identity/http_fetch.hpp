// A small one-shot HTTP(S) client for identity endpoints: one request, one bounded response,
// one deadline. Not for proxied traffic (that streams through upstream/).
#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/system/error_code.hpp>

namespace msiproxy {

struct fetch_request {
    std::string method = "GET";
    std::string url;  // absolute http:// or https://
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;                          // sent with Content-Length when not empty
    std::chrono::milliseconds timeout{10000};  // whole exchange
    std::size_t max_body = 1 << 20;
};

struct fetch_response {
    unsigned status = 0;
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
    std::string body;
    // First value of a header (name lower-case), or "".
    std::string header(std::string_view name) const;
};

// Errors: msiproxy::errc connect errors (dns_error, connection_refused, connect_timeout, tls_*),
// upstream_response_timeout, upstream_protocol_error (bad/oversized response).
boost::asio::awaitable<std::pair<boost::system::error_code, fetch_response>> http_fetch(
    boost::asio::any_io_executor ex, boost::asio::ssl::context& tls, fetch_request req);

}  // namespace msiproxy
