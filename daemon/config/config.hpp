// The configuration model: plain aggregates with the defaults of INTERFACE.md, one member per
// key. load.cpp fills them from config.toml; nothing here does I/O.
#pragma once

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace msiproxy {

using duration = std::chrono::milliseconds;

enum class unmatched_policy { forward, deny };
enum class client_auth_policy { replace, keep };
enum class identity_source_kind {
    auto_detect,
    imds,
    app_service,
    azure_arc,
    workload_identity,
    azure_cli,
};

// Where a value came from, for messages that name file:line:column.
struct source_pos {
    int line = 0;
    int column = 0;
};

// A listening address as written ("127.0.0.1:8990", "[::1]:8990", "localhost:8990").
struct listen_address {
    std::string host;  // without brackets
    std::uint16_t port = 0;
    bool empty() const { return host.empty(); }
    std::string to_string() const;  // host:port, IPv6 in brackets
};

// At most one member is set; none means the system-assigned identity.
struct identity_selector {
    std::string client_id;
    std::string object_id;
    std::string resource_id;
    bool empty() const { return client_id.empty() && object_id.empty() && resource_id.empty(); }
    // "system", "client_id=...", "object_id=...", "resource_id=..."; used as a cache key part.
    std::string describe() const;
    friend bool operator==(const identity_selector&, const identity_selector&) = default;
};

struct proxy_config {
    listen_address listen{"127.0.0.1", 8990};
    bool allow_remote = false;
    unmatched_policy unmatched = unmatched_policy::forward;
    bool tunnel = true;
    // Unmatched requests and CONNECT may not reach loopback and private addresses either
    // (link-local ones, IMDS among them, are always refused).
    bool deny_private = false;
    duration header_timeout = std::chrono::seconds(10);
    duration idle_timeout = std::chrono::seconds(75);
    std::size_t max_header_bytes = 65536;
    std::size_t max_connections = 4096;
    duration shutdown_grace = std::chrono::seconds(10);
    unsigned threads = 1;  // worker threads, each with its own io_context and listener (1..64)
};

struct admin_config {
    listen_address listen{"127.0.0.1", 8991};  // empty host: admin listener disabled
};

struct log_config {
    std::string level = "info";   // trace | debug | info | warn | error | off
    std::string format = "text";  // text | json
    bool access = true;
};

struct identity_config {
    identity_source_kind source = identity_source_kind::auto_detect;
    identity_selector selector;
    std::string endpoint;  // overrides the source's token endpoint URL when not empty
    duration timeout = std::chrono::seconds(10);    // one token request, all phases
    duration retry_max = std::chrono::seconds(60);  // cap of the retry backoff
};

struct upstream_config {
    std::string ca_file;
    duration connect_timeout = std::chrono::seconds(5);
    duration response_timeout = std::chrono::seconds(60);
};

// A route's upstream, parsed from "scheme://host[:port][/base path]".
struct upstream_target {
    bool tls = true;   // https
    std::string host;  // lower case, IPv6 without brackets
    std::uint16_t port = 443;
    std::string base_path;  // "" or "/base" without a trailing slash
    std::string authority;  // Host header value: host, or host:port when not the default
    std::string url;        // as written in the config
};

struct route {
    std::string name;
    std::string host;  // lower case; "" = any host; "*.example.com" = wildcard
    std::string path_prefix = "/";
    bool strip_prefix = false;
    upstream_target upstream;
    std::string resource;        // token audience (a scope's "/.default" removed); never empty
    std::string scope;           // as written, when the route used scope = ...
    identity_selector identity;  // empty: the [identity] selector applies
    std::string header = "Authorization";
    std::string value = "Bearer {token}";
    client_auth_policy client_authorization = client_auth_policy::replace;
    bool allow_http_upstream = false;
    source_pos pos;  // of the [[route]] table
};

struct config {
    std::string path;  // file it was loaded from, for messages
    proxy_config proxy;
    admin_config admin;
    log_config log;
    identity_config identity;
    upstream_config upstream;
    std::vector<route> routes;
};

// One problem found in a config file.
struct config_error {
    std::string file;
    source_pos pos;
    std::string key;  // dotted key, e.g. "route[2].upstream" or "proxy.listen"
    std::string message;
    // "file:line:column: key: message" (line/column omitted when unknown)
    std::string format() const;
};

// Thrown by the loaders; carries every problem found, not only the first.
class config_exception : public std::runtime_error {
  public:
    explicit config_exception(std::vector<config_error> errors);
    const std::vector<config_error>& errors() const { return errors_; }

  private:
    std::vector<config_error> errors_;
};

// Parses and validates. Throws config_exception listing every problem. Reads the file only;
// no network, no environment.
config load_config_file(const std::string& path);
config load_config_string(std::string_view text, const std::string& path = "<string>");

// Human-readable route table for `msiproxy --check`: one line per route.
std::string describe_routes(const config& cfg);

// Parses "250ms", "10s", "5m", "1h" (also "1.5s"); false on anything else or negative.
bool parse_duration(std::string_view text, duration& out);

}  // namespace msiproxy
