// An in-process token endpoint on 127.0.0.1:0 for source tests: records every request (method,
// path, query, headers, body) and answers each with a programmable status, headers and body.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>

namespace msiproxy::test {

struct endpoint_request {
    std::string method;
    std::string target;                                        // as sent
    std::string path;                                          // decoded
    std::vector<std::pair<std::string, std::string>> query;    // decoded, in order
    std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
    std::string body;
    // First value, or "" (header names case-insensitive; query keys exact).
    std::string header(std::string_view name) const;
    bool has_header(std::string_view name) const;
    std::string query_value(std::string_view key) const;
    bool has_query(std::string_view key) const;
    // The body as application/x-www-form-urlencoded fields, decoded.
    std::vector<std::pair<std::string, std::string>> form() const;
    std::string form_value(std::string_view key) const;
};

struct canned_reply {
    unsigned status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
};

// Serves one request per connection (the sources' client closes after each). Runs on the
// caller's io_context; stop() closes the listener so that io_context::run can return.
class fake_token_endpoint {
  public:
    // With `tls`, serves HTTPS using that server context (certificate already loaded).
    explicit fake_token_endpoint(boost::asio::io_context& ioc,
                                 boost::asio::ssl::context* tls = nullptr);
    ~fake_token_endpoint();
    fake_token_endpoint(const fake_token_endpoint&) = delete;
    fake_token_endpoint& operator=(const fake_token_endpoint&) = delete;

    std::uint16_t port() const;
    // "http://127.0.0.1:<port><path>" (https with TLS).
    std::string url(std::string_view path = "/") const;

    // Replies are taken in order; when none is left, `fallback` answers (default: 200 with a
    // valid token). A handler, when set, overrides both.
    void push(canned_reply r);
    std::function<canned_reply(const endpoint_request&)> handler;
    canned_reply fallback;

    const std::vector<endpoint_request>& requests() const { return *requests_; }
    void stop();

    // A token response body with expires_in seconds.
    static std::string token_body(std::string_view token = "tok", int expires_in = 3600);

  private:
    struct state;
    std::shared_ptr<state> state_;
    std::shared_ptr<std::vector<endpoint_request>> requests_;
};

}  // namespace msiproxy::test
