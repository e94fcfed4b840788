// The msiproxy error category and the one place errors map to status + Proxy-Status.
#include "common/error.hpp"

namespace msiproxy {

namespace {

class category final : public boost::system::error_category {
  public:
    const char* name() const noexcept override { return "msiproxy"; }
    std::string message(int ev) const override {
        switch (static_cast<errc>(ev)) {
            case errc::ok:
                return "success";
            case errc::bad_request:
                return "malformed request";
            case errc::header_too_large:
                return "request head too large";
            case errc::request_denied:
                return "request denied";
            case errc::destination_prohibited:
                return "destination prohibited";
            case errc::dns_error:
                return "upstream host name could not be resolved";
            case errc::connection_refused:
                return "upstream refused the connection";
            case errc::connect_timeout:
                return "connecting to the upstream timed out";
            case errc::tls_certificate_error:
                return "upstream TLS certificate not trusted";
            case errc::tls_protocol_error:
                return "TLS handshake with the upstream failed";
            case errc::upstream_protocol_error:
                return "upstream broke the HTTP protocol";
            case errc::upstream_response_timeout:
                return "upstream response timed out";
            case errc::token_unavailable:
                return "no valid token available";
            case errc::expectation_failed:
                return "unsupported Expect";
        }
        return "unknown msiproxy error";
    }
};

}  // namespace

const boost::system::error_category& msiproxy_category() noexcept {
    static const category c;
    return c;
}

error_reply_kind reply_kind(errc e) noexcept {
    switch (e) {
        case errc::ok:
            return {200, ""};
        case errc::bad_request:
            return {400, "http_request_error"};
        case errc::header_too_large:
            return {431, "http_request_error"};
        case errc::request_denied:
            return {403, "http_request_denied"};
        case errc::destination_prohibited:
            return {403, "destination_ip_prohibited"};
        case errc::dns_error:
            return {502, "dns_error"};
        case errc::connection_refused:
            return {502, "connection_refused"};
        case errc::connect_timeout:
            return {504, "connection_timeout"};
        case errc::tls_certificate_error:
            return {502, "tls_certificate_error"};
        case errc::tls_protocol_error:
            return {502, "tls_protocol_error"};
        case errc::upstream_protocol_error:
            return {502, "http_protocol_error"};
        case errc::upstream_response_timeout:
            return {504, "http_response_timeout"};
        case errc::token_unavailable:
            return {503, "proxy_internal_error"};
        case errc::expectation_failed:
            return {417, "http_request_error"};
    }
    return {500, "proxy_internal_error"};
}

}  // namespace msiproxy
