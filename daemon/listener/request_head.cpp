// The pure request-head checks of the session (see request_head.hpp): head end, raw syntax,
// target form and the Transfer-Encoding rule.
#include "listener/request_head.hpp"

#include <boost/url/parse.hpp>

#include "router/router.hpp"

namespace msiproxy {

namespace {

bool iequals_ascii(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        char x = a[i], y = b[i];
        if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
        if (x != y) return false;
    }
    return true;
}

}  // namespace

std::size_t find_head_end(std::string_view data, std::size_t from) {
    // A bare LF is accepted here so that the head can be rejected in raw_head_is_clean.
    for (std::size_t i = data.find('\n', from); i != std::string_view::npos;
         i = data.find('\n', i + 1)) {
        if (i + 1 < data.size() && data[i + 1] == '\n') return i + 2;
        if (i + 2 < data.size() && data[i + 1] == '\r' && data[i + 2] == '\n') return i + 3;
    }
    return std::string_view::npos;
}

std::size_t header_field_count(std::string_view head) {
    std::size_t lines = 0;
    for (std::size_t i = head.find('\n'); i != std::string_view::npos; i = head.find('\n', i + 1))
        ++lines;
    // The request line and the closing empty line are not fields.
    return lines >= 2 ? lines - 2 : 0;
}

bool raw_head_is_clean(std::string_view head) {
    std::size_t pos = head.find('\n');
    while (pos != std::string_view::npos && pos + 1 < head.size()) {
        if (pos == 0 || head[pos - 1] != '\r') return false;
        char next = head[pos + 1];
        if (next == ' ' || next == '\t') return false;
        pos = head.find('\n', pos + 1);
    }
    return true;
}

bool parse_request_target(std::string_view target, std::size_t host_count, std::string_view host,
                          target_info& t, std::string& why) {
    if (!target.empty() && target.front() == '/') {
        t.absolute = false;
        t.path = std::string(target);
        // Exactly one Host header (RFC 9112 section 3.2).
        if (host_count != 1) {
            why = host_count == 0 ? "missing Host header" : "more than one Host header";
            return false;
        }
        t.authority = std::string(host);
        auto auth = boost::urls::parse_authority(t.authority);
        if (!auth || auth->has_userinfo() || t.authority.empty()) {
            why = "invalid Host header";
            return false;
        }
        t.host = std::string(auth->host_address());
        t.port = auth->has_port() ? auth->port_number() : 80;
        if (auth->has_port() && auth->port_number() == 0) {
            why = "invalid port in Host header";
            return false;
        }
    } else {
        auto u = boost::urls::parse_absolute_uri(target);
        if (!u || !u->has_authority() || u->host().empty() || u->has_userinfo() ||
            u->has_fragment()) {
            why = "request target must be origin-form (/path) or an absolute http:// URL";
            return false;
        }
        // Boost.URL 1.81 takes "http://h:x/p" as host "h", an empty port and the rootless path
        // "x/p"; forwarded, that path would not even form a valid request line.
        if (!u->encoded_path().empty() && !u->encoded_path().starts_with('/')) {
            why = "request target must be origin-form (/path) or an absolute http:// URL";
            return false;
        }
        auto scheme = u->scheme_id();
        if (scheme != boost::urls::scheme::http && scheme != boost::urls::scheme::https) {
            why = "only http:// and https:// request targets are proxied";
            return false;
        }
        t.absolute = true;
        t.tls = scheme == boost::urls::scheme::https;
        t.host = std::string(u->host_address());
        // An empty port ("http://h:/") means the scheme's default (RFC 3986 section 3.2.3).
        t.port = u->has_port() && !u->port().empty() ? u->port_number() : (t.tls ? 443 : 80);
        t.authority = std::string(u->encoded_host_and_port());
        t.path = std::string(u->encoded_path());
        if (t.path.empty()) t.path = "/";
        if (u->has_query()) t.path += "?" + std::string(u->encoded_query());
    }
    to_lower_ascii(t.host);
    return true;
}

bool transfer_encoding_acceptable(std::size_t te_count, std::string_view te,
                                  bool has_content_length) {
    if (te_count == 0) return true;
    return te_count == 1 && iequals_ascii(te, "chunked") && !has_content_length;
}

}  // namespace msiproxy
