// Internals shared by load.cpp (toml++ -> structs) and validate.cpp (value and cross-field
// checks): the error collector, the record of where each key was written, the value parsers.
#pragma once

#include <boost/system/result.hpp>

#include <cstddef>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace msiproxy::config_detail {

// Collects every problem of one file; the loader throws them all together at the end.
class diagnostics {
  public:
    explicit diagnostics(std::string file) : file_(std::move(file)) {}

    void add(source_pos pos, std::string key, std::string message);
    bool empty() const { return errors_.empty(); }
    // Sorted by position (unknown positions last) and thrown as one config_exception.
    [[noreturn]] void raise();

  private:
    std::string file_;
    std::vector<config_error> errors_;
};

// Where each key was written, under an internal name ("proxy.listen", "route.2.upstream"), so
// that cross-field checks can point at the right line after the values have been converted.
class key_positions {
  public:
    void set(const std::string& key, source_pos pos) { pos_[key] = pos; }
    bool has(const std::string& key) const { return pos_.count(key) != 0; }
    // A key whose value was rejected already: cross-field checks leave it alone.
    void set_invalid(const std::string& key) { invalid_.insert(key); }
    bool valid(const std::string& key) const { return invalid_.count(key) == 0; }
    // The key's position, or `fallback` when it was not written.
    source_pos at(const std::string& key, source_pos fallback = {}) const;

  private:
    std::map<std::string, source_pos> pos_;
    std::set<std::string> invalid_;
};

// Internal position key of a route's member: "route.<1-based index>.<member>".
std::string route_pos_key(std::size_t index, std::string_view member);

// How a route is named in messages: `route[2]`, or `route[2] "graph"` when it has a name.
std::string route_display(std::size_t index, std::string_view explicit_name);

// Value parsers: the error is a sentence for the operator, without the key (the caller adds it).
template <class T>
using parsed = boost::system::result<T, std::string>;

// "host:port" or "[v6]:port"; the empty string gives an empty listen_address when allow_empty.
parsed<listen_address> parse_listen_address(std::string_view text, bool allow_empty);

// 127.0.0.0/8, ::1 (also IPv4-mapped) and "localhost" are loopback; names and other IPs are not.
bool is_loopback_host(const std::string& host);

// A route's host: lower-cased; "" = any; "*.example.com" allowed; no port, scheme or path.
parsed<std::string> normalize_route_host(std::string_view text);

// "scheme://host[:port][/base path]" with http or https; see upstream_target.
parsed<upstream_target> parse_upstream_url(std::string_view text);

// An absolute http(s) URL with a host (identity.endpoint).
parsed<std::string> check_endpoint_url(std::string_view text);

// A header name a route may set: an RFC 9110 token, not hop-by-hop nor framing/Host.
parsed<std::string> check_token_header(std::string_view text);

// Cross-field checks on a loaded config (listeners vs allow_remote, identity selectors, route
// resource/scope, cleartext upstreams, unique names). Fills defaults such as route names.
void validate_config(config& cfg, const key_positions& where, diagnostics& diag);

}  // namespace msiproxy::config_detail
