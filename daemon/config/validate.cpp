// Checks of config values: the parsers for listen addresses, route hosts, upstream URLs and header
// names, and the cross-field rules that need the whole config (validate_config).
#include <boost/asio/ip/address.hpp>
#include <boost/url.hpp>

#include <algorithm>
#include <array>
#include <map>
#include <string>
#include <string_view>

#include "config/config_detail.hpp"

namespace msiproxy::config_detail {

namespace {

namespace ip = boost::asio::ip;
namespace urls = boost::urls;

using boost::system::in_place_error;
using boost::system::in_place_value;

char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lower(std::string_view s) {
    std::string out(s);
    std::transform(out.begin(), out.end(), out.begin(), ascii_lower);
    return out;
}

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return ascii_lower(x) == ascii_lower(y);
           });
}

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}
bool is_alpha(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

// Ports as decimal digits only: std::stoi would accept "+80" and " 80".
bool parse_port(std::string_view s, std::uint16_t& out) {
    if (s.empty() || s.size() > 5) return false;
    unsigned v = 0;
    for (char c : s) {
        if (!is_digit(c)) return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v > 65535) return false;
    out = static_cast<std::uint16_t>(v);
    return true;
}

// A DNS-style name as operators write them; '_' is tolerated because internal names use it.
bool is_host_name(std::string_view s) {
    if (s.empty() || s.size() > 253) return false;
    std::size_t label = 0;
    for (char c : s) {
        if (c == '.') {
            if (label == 0) return false;
            label = 0;
            continue;
        }
        if (!(is_alpha(c) || is_digit(c) || c == '-' || c == '_')) return false;
        ++label;
    }
    return label != 0;
}

std::string quoted(std::string_view s) {
    return "\"" + std::string(s) + "\"";
}

// Where the listener would accept connections from, for the allow_remote rule.
void check_loopback_listener(const char* key, const listen_address& addr, bool allow_remote,
                             const key_positions& where, diagnostics& diag) {
    if (addr.empty() || allow_remote || is_loopback_host(addr.host)) return;
    diag.add(where.at(key), key,
             quoted(addr.to_string()) +
                 " is not a loopback address: anyone who can reach it could use this machine's "
                 "identity; set proxy.allow_remote = true if you mean it");
}

// At most one of client_id / object_id / resource_id; `prefix` is the internal position prefix.
void check_selector(const identity_selector& sel, const std::string& prefix,
                    const std::string& display, source_pos fallback, const key_positions& where,
                    diagnostics& diag) {
    const std::array<std::pair<const char*, const std::string*>, 3> members{{
        {"client_id", &sel.client_id},
        {"object_id", &sel.object_id},
        {"resource_id", &sel.resource_id},
    }};
    std::vector<const char*> set;
    for (const auto& [name, value] : members) {
        if (!value->empty()) set.push_back(name);
    }
    if (set.size() < 2) return;
    std::string names;
    for (std::size_t i = 0; i < set.size(); ++i) {
        names += (i == 0 ? "" : (i + 1 == set.size() ? " and " : ", "));
        names += set[i];
    }
    // Point at the last one written: that is usually the line to delete.
    source_pos pos = fallback;
    for (const char* name : set) {
        const source_pos p = where.at(prefix + "." + name, fallback);
        if (p.line > pos.line || (p.line == pos.line && p.column > pos.column)) pos = p;
    }
    diag.add(pos, display,
             "at most one of client_id, object_id, resource_id may be set (found " + names + ")");
}

}  // namespace

source_pos key_positions::at(const std::string& key, source_pos fallback) const {
    const auto it = pos_.find(key);
    return it == pos_.end() ? fallback : it->second;
}

std::string route_pos_key(std::size_t index, std::string_view member) {
    return "route." + std::to_string(index) + "." + std::string(member);
}

std::string route_display(std::size_t index, std::string_view explicit_name) {
    std::string out = "route[" + std::to_string(index) + "]";
    // A name with control characters is itself an error; quoting it would garble the message.
    const bool printable = std::ranges::none_of(
        explicit_name, [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
    if (!explicit_name.empty() && printable) out += " " + quoted(explicit_name);
    return out;
}

parsed<listen_address> parse_listen_address(std::string_view text, bool allow_empty) {
    constexpr const char* form =
        "expected \"host:port\" or \"[ipv6]:port\", e.g. \"127.0.0.1:8990\"";
    if (text.empty()) {
        if (allow_empty) return listen_address{"", 0};
        return {in_place_error, std::string("must not be empty; ") + form};
    }
    std::string_view host;
    std::string_view port;
    if (text.front() == '[') {
        const auto close = text.find(']');
        if (close == std::string_view::npos)
            return {in_place_error, std::string("missing ']'; ") + form};
        host = text.substr(1, close - 1);
        const std::string_view rest = text.substr(close + 1);
        if (rest.empty() || rest.front() != ':') {
            return {in_place_error, std::string("missing port; ") + form};
        }
        port = rest.substr(1);
        boost::system::error_code ec;
        const auto addr = ip::make_address(host, ec);
        if (ec || !addr.is_v6()) {
            return {in_place_error, quoted(host) + " in brackets is not an IPv6 address"};
        }
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string_view::npos) {
            return {in_place_error, std::string("missing port; ") + form};
        }
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
        if (host.find(':') != std::string_view::npos) {
            return {in_place_error, "an IPv6 address must be in brackets, e.g. \"[::1]:8990\""};
        }
        if (host.empty()) {
            return {in_place_error, "missing host (\"0.0.0.0:PORT\" listens on all interfaces)"};
        }
        boost::system::error_code ec;
        ip::make_address(host, ec);
        if (ec && !is_host_name(host)) {
            return {in_place_error, quoted(host) + " is neither an IP address nor a host name"};
        }
    }
    listen_address out;
    if (!parse_port(port, out.port)) {
        return {in_place_error, "port " + quoted(port) + " is not a number from 0 to 65535"};
    }
    out.host = lower(host);
    return out;
}

bool is_loopback_host(const std::string& host) {
    if (iequals(host, "localhost")) return true;
    boost::system::error_code ec;
    const auto addr = ip::make_address(host, ec);
    if (ec) return false;
    if (addr.is_v4()) return addr.to_v4().is_loopback();
    const auto v6 = addr.to_v6();
    if (v6.is_v4_mapped()) return ip::make_address_v4(ip::v4_mapped, v6).is_loopback();
    return v6.is_loopback();
}

parsed<std::string> normalize_route_host(std::string_view text) {
    if (text.empty()) return {in_place_value, std::string()};
    if (text.find("://") != std::string_view::npos) {
        return {in_place_error,
                "must be a host name without a scheme, e.g. \"graph.microsoft.com\""};
    }
    if (text.find('/') != std::string_view::npos) {
        return {in_place_error, "must be a host name without a path (use path_prefix for paths)"};
    }
    if (text.find(':') != std::string_view::npos || text.front() == '[') {
        return {in_place_error,
                "must be a host name without a port (the route matches the host on any port)"};
    }
    std::string host = lower(text);
    std::string_view name = host;
    if (name.size() > 2 && name.substr(0, 2) == "*.") name.remove_prefix(2);
    if (name.find('*') != std::string_view::npos) {
        return {in_place_error,
                "a wildcard is allowed only as the whole first label, e.g. \"*.example.com\""};
    }
    if (!is_host_name(name)) {
        return {in_place_error, quoted(text) + " is not a valid host name"};
    }
    return {in_place_value, std::move(host)};
}

parsed<upstream_target> parse_upstream_url(std::string_view text) {
    constexpr const char* form = "expected \"https://host[:port][/base path]\"";
    const auto parsed_url = urls::parse_uri(text);
    if (!parsed_url) return {in_place_error, std::string("is not an absolute URL; ") + form};
    const urls::url_view u = *parsed_url;

    upstream_target out;
    if (u.scheme_id() == urls::scheme::https) {
        out.tls = true;
    } else if (u.scheme_id() == urls::scheme::http) {
        out.tls = false;
    } else {
        return {in_place_error, "scheme must be http or https, not " + quoted(u.scheme())};
    }
    if (!u.has_authority() || u.encoded_host().empty()) {
        return {in_place_error, std::string("has no host; ") + form};
    }
    if (u.has_userinfo()) {
        return {in_place_error,
                "must not contain user info (user:password@): the route's "
                "token is the credential"};
    }
    if (u.has_query()) return {in_place_error, "must not contain a query (?...)"};
    if (u.has_fragment()) return {in_place_error, "must not contain a fragment (#...)"};

    switch (u.host_type()) {
        case urls::host_type::name:
            if (u.encoded_host().find('%') != urls::string_view::npos ||
                !is_host_name(u.encoded_host())) {
                return {in_place_error, quoted(u.encoded_host()) + " is not a valid host name"};
            }
            out.host = lower(u.encoded_host());
            break;
        case urls::host_type::ipv4:
            out.host = u.encoded_host();
            break;
        case urls::host_type::ipv6:
            out.host = u.host_ipv6_address().to_string();
            break;
        default:
            return {in_place_error, quoted(u.encoded_host()) + " is not a supported host"};
    }

    const std::uint16_t default_port = out.tls ? 443 : 80;
    out.port = default_port;
    if (u.has_port() && !parse_port(u.port(), out.port)) {
        return {in_place_error, "port " + quoted(u.port()) + " is not a number from 1 to 65535"};
    }
    if (out.port == 0) return {in_place_error, "port 0 is not a port one can connect to"};

    // The base path is prepended to request paths, which start with '/', so drop trailing ones.
    std::string path(u.encoded_path());
    while (!path.empty() && path.back() == '/')
        path.pop_back();
    out.base_path = std::move(path);

    const std::string host_part =
        u.host_type() == urls::host_type::ipv6 ? "[" + out.host + "]" : out.host;
    out.authority =
        out.port == default_port ? host_part : host_part + ":" + std::to_string(out.port);
    out.url = std::string(text);
    return out;
}

parsed<std::string> check_endpoint_url(std::string_view text) {
    const auto parsed_url = urls::parse_uri(text);
    if (!parsed_url || (parsed_url->scheme_id() != urls::scheme::http &&
                        parsed_url->scheme_id() != urls::scheme::https)) {
        return {in_place_error, "must be an absolute http:// or https:// URL"};
    }
    if (!parsed_url->has_authority() || parsed_url->encoded_host().empty()) {
        return {in_place_error, "must be an absolute http:// or https:// URL with a host"};
    }
    return {in_place_value, std::string(text)};
}

parsed<std::string> check_token_header(std::string_view text) {
    if (text.empty()) return {in_place_error, "must not be empty"};
    // RFC 9110 section 5.6.2 tchar.
    constexpr std::string_view extra = "!#$%&'*+-.^_`|~";
    for (char c : text) {
        if (!(is_alpha(c) || is_digit(c) || extra.find(c) != std::string_view::npos)) {
            return {in_place_error, quoted(text) + " is not a valid HTTP header name"};
        }
    }
    // Hop-by-hop headers are stripped before forwarding, and the framing headers and Host are
    // the proxy's own: a token in any of them would be lost or would corrupt the request.
    constexpr std::array<std::string_view, 12> reserved{
        "Connection",
        "Proxy-Connection",
        "Keep-Alive",
        "TE",
        "Trailer",
        "Transfer-Encoding",
        "Upgrade",
        "Proxy-Authorization",
        "Proxy-Authenticate",
        "Host",
        "Content-Length",
        "Expect",
    };
    for (std::string_view r : reserved) {
        if (iequals(text, r)) {
            return {in_place_error,
                    quoted(text) +
                        " is managed by the proxy (hop-by-hop, framing or Host) and "
                        "cannot carry the token"};
        }
    }
    return {in_place_value, std::string(text)};
}

void validate_config(config& cfg, const key_positions& where, diagnostics& diag) {
    check_loopback_listener("proxy.listen", cfg.proxy.listen, cfg.proxy.allow_remote, where, diag);
    check_loopback_listener("admin.listen", cfg.admin.listen, cfg.proxy.allow_remote, where, diag);
    check_selector(cfg.identity.selector, "identity", "identity", {}, where, diag);

    // name -> (1-based index, position) of the first route that used it
    std::map<std::string, std::pair<std::size_t, source_pos>> names;
    for (std::size_t i = 0; i < cfg.routes.size(); ++i) {
        route& r = cfg.routes[i];
        const std::size_t n = i + 1;
        const std::string display = route_display(n, r.name);
        const auto pos_of = [&](std::string_view member) {
            return where.at(route_pos_key(n, member), r.pos);
        };
        const auto has = [&](std::string_view member) {
            return where.has(route_pos_key(n, member));
        };

        if (!has("upstream")) {
            diag.add(r.pos, display + ".upstream",
                     "is required (where to forward, e.g. \"https://graph.microsoft.com\")");
        } else if (!r.upstream.tls && !r.upstream.host.empty() && !r.allow_http_upstream) {
            diag.add(pos_of("upstream"), display + ".upstream",
                     "a token would be sent over cleartext http://; set allow_http_upstream = "
                     "true if you mean it");
        }

        const bool has_resource = has("resource");
        const bool has_scope = has("scope");
        if (has_resource && has_scope) {
            diag.add(pos_of("scope"), display + ".scope",
                     "set either resource or scope, not both (they name the same audience)");
        } else if (!has_resource && !has_scope) {
            diag.add(r.pos, display + ".resource",
                     "one of resource or scope is required (the token audience, e.g. "
                     "resource = \"https://graph.microsoft.com\")");
        } else if (has_resource) {
            if (r.resource.empty() && where.valid(route_pos_key(n, "resource"))) {
                diag.add(pos_of("resource"), display + ".resource", "must not be empty");
            }
        } else if (where.valid(route_pos_key(n, "scope"))) {
            constexpr std::string_view suffix = "/.default";
            const std::string_view scope = r.scope;
            if (scope.size() <= suffix.size() ||
                scope.substr(scope.size() - suffix.size()) != suffix) {
                diag.add(
                    pos_of("scope"), display + ".scope",
                    "must end in \"/.default\" (managed identity tokens carry the "
                    "resource's default scope), e.g. \"https://graph.microsoft.com/.default\"");
            } else {
                r.resource = std::string(scope.substr(0, scope.size() - suffix.size()));
            }
        }

        check_selector(r.identity, "route." + std::to_string(n), display, r.pos, where, diag);

        if (r.name.empty()) r.name = "route-" + std::to_string(n);
        const auto [it, inserted] = names.try_emplace(r.name, n, pos_of("name"));
        if (!inserted) {
            const auto& [first_index, first_pos] = it->second;
            diag.add(pos_of("name"), display + ".name",
                     "duplicate route name " + quoted(r.name) + " (also used by route[" +
                         std::to_string(first_index) + "] at line " +
                         std::to_string(first_pos.line) + "); names must be unique");
        }
    }
}

}  // namespace msiproxy::config_detail
