// Logging setup (spdlog to stderr, text or JSON lines) and the access log line.
// Tokens never reach these functions; header values are redacted by the caller's contract.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.hpp"

namespace msiproxy {

// Installs the default logger writing to stderr in cfg.format at cfg.level. Callable again on
// reload to change level/format. Throws std::invalid_argument on an unknown level/format.
void setup_logging(const log_config& cfg);

// One proxied request, written when it finishes (if access logging is on).
struct access_entry {
    std::string_view route;  // "" when unmatched
    std::string_view method;
    std::string_view host;
    std::string_view path;  // without the query string
    unsigned status = 0;
    std::uint64_t bytes_in = 0;   // request body bytes from the client
    std::uint64_t bytes_out = 0;  // response body bytes to the client
    double total_seconds = 0;
    double upstream_seconds = 0;   // 0 when no upstream exchange happened
    std::string_view proxy_error;  // Proxy-Status error type, "" if none
    std::string_view client;       // peer address "ip:port"
};
void log_access(const access_entry& e);

// Logs at warn/error, but the same (key) at most once per `window` seconds; a later line says
// how many were suppressed. For repeated identical failures (endpoint down, upstream refusing).
// `level` is a spdlog::level::level_enum value (warn = 3, error = 4). Thread-safe.
void log_rate_limited(std::string_view key, int level, std::string_view message,
                      double window = 60);

// A header value fit for a log line: for Authorization and Proxy-Authorization (any case) the
// scheme is kept and the credentials hidden ("Bearer <redacted>"); other values are returned as is.
std::string redact_header(std::string_view name, std::string_view value);

}  // namespace msiproxy
