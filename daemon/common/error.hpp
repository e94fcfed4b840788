// msiproxy's own error codes, one per cause, and their single mapping to what a client sees:
// HTTP status and RFC 9209 Proxy-Status error type (INTERFACE.md's error table).
#pragma once

#include <string_view>
#include <system_error>

#include <boost/system/error_code.hpp>

namespace msiproxy {

enum class errc {
    ok = 0,
    bad_request,             // malformed or ambiguous request framing
    header_too_large,        // request head over max_header_bytes
    request_denied,          // unmatched = "deny", CONNECT refused
    destination_prohibited,  // destination is forbidden (loop to ourselves, link-local, ...)
    dns_error,
    connection_refused,
    connect_timeout,
    tls_certificate_error,
    tls_protocol_error,
    upstream_protocol_error,  // upstream broke HTTP, or closed/reset before a full response
    upstream_response_timeout,
    token_unavailable,
    expectation_failed,  // Expect other than 100-continue
};

const boost::system::error_category& msiproxy_category() noexcept;

inline boost::system::error_code make_error_code(errc e) noexcept {
    return {static_cast<int>(e), msiproxy_category()};
}

// How an error is shown to the client.
struct error_reply_kind {
    unsigned status;
    std::string_view proxy_status;  // RFC 9209 error type
};
error_reply_kind reply_kind(errc e) noexcept;

}  // namespace msiproxy

namespace boost::system {
template <>
struct is_error_code_enum<msiproxy::errc> : std::true_type {};
}  // namespace boost::system
