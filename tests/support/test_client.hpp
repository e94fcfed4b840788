// Blocking HTTP/1.1 client helpers for tests: raw request strings in, parsed responses out,
// with a timeout on every I/O step; bodies of any size can be streamed up or merely counted.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <iosfwd>

#include <boost/system/error_code.hpp>
#include <boost/system/result.hpp>

#include "support/http_record.hpp"

namespace msiproxy::test {

struct http_response {
    unsigned status = 0;
    std::string reason;
    unsigned version = 11;
    header_list headers;
    std::string body;                 // empty when read_options::keep_body is false
    std::uint64_t body_bytes = 0;     // always counted
    std::uint64_t body_checksum = 0;  // checksum (byte_pattern.hpp) of the body
    bool chunked = false;
    bool keep_alive = true;

    std::optional<std::string> header(std::string_view name) const {
        return find_header(headers, name);
    }
    bool has_header(std::string_view name) const { return count_header(headers, name) > 0; }
};

struct read_options {
    bool skip_body = false;  // the request was HEAD or CONNECT: the response has no body
    bool keep_body = true;   // false: count and checksum the body, keep none of it
    std::size_t body_limit = 16 * 1024 * 1024;  // kept bytes; more is an error
    std::chrono::milliseconds timeout =
        std::chrono::seconds(15);  // per read step, not for the whole body
};

// A streamed upload of `bytes` pattern bytes (byte_pattern.hpp), never held in memory.
struct upload_request {
    std::string method = "POST";
    std::string target{};   // "/path" or "http://host/path"
    std::string host{};     // Host header; "" = the authority of an absolute target
    header_list headers{};  // extra headers
    std::uint64_t bytes = 0;
    bool chunked = false;           // Transfer-Encoding: chunked instead of Content-Length
    bool expect_continue = false;   // send Expect: 100-continue and wait for the 100 first
    std::size_t piece = 64 * 1024;  // write size (and chunk size when chunked)
    read_options response{};
};

// TLS for the client side (to talk to a TLS fake directly).
struct client_tls {
    std::string ca_pem{};                   // the only trust anchor
    std::string server_name = "localhost";  // SNI and the name verified
};

// One TCP (optionally TLS) connection to 127.0.0.1:port. Every call blocks, bounded by the
// timeouts given; errors come back as error codes (beast::error::timeout on expiry).
// Not thread-safe: one thread uses a connection.
class client_connection {
  public:
    // Connects at once; throws boost::system::system_error when it cannot.
    explicit client_connection(std::uint16_t port,
                               std::chrono::milliseconds timeout = std::chrono::seconds(15),
                               std::optional<client_tls> tls = std::nullopt);
    ~client_connection();
    client_connection(const client_connection&) = delete;
    client_connection& operator=(const client_connection&) = delete;

    // Writes raw bytes as given (requests, bodies, deliberately broken framing).
    boost::system::error_code send(std::string_view raw);
    // Reads one response; interim 1xx responses are returned like any other.
    boost::system::result<http_response> read_response(const read_options& options = {});
    // send + read_response, skipping interim 1xx responses except 101.
    boost::system::result<http_response> request(std::string_view raw,
                                                 const read_options& options = {});
    // Streams an upload and returns the final response. With expect_continue, a final
    // response received instead of the 100 is returned without sending the body.
    boost::system::result<http_response> upload(const upload_request& up);
    // Reads and discards until the peer closes (true: EOF or reset) or the timeout (false).
    bool wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(15));

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

// "HTTP 200, 2 body bytes": lets Catch2 print a result<http_response> in failure messages.
std::ostream& operator<<(std::ostream& os, const http_response& r);

// One request on a fresh connection.
boost::system::result<http_response> http_exchange(std::uint16_t port, std::string_view raw,
                                                   const read_options& options = {});

// Request text builders. They add Host (unless headers already carry one) and, when `body` is
// not empty, Content-Length (unless headers carry Content-Length or Transfer-Encoding).
std::string make_request(std::string_view method, std::string_view target, std::string_view host,
                         const header_list& headers = {}, std::string_view body = {});
// Forward-proxy style: absolute-form target "http://api.test/x"; Host is its authority.
std::string proxy_request(std::string_view method, std::string_view absolute_url,
                          const header_list& headers = {}, std::string_view body = {});
// Local base URL style: origin-form target "/svc/x" with the given Host.
std::string origin_request(std::string_view method, std::string_view path,
                           std::string_view host = "127.0.0.1", const header_list& headers = {},
                           std::string_view body = {});
// The authority of "http://host[:port]/..." ("" when the text is not absolute-form).
std::string authority_of(std::string_view absolute_url);

}  // namespace msiproxy::test
