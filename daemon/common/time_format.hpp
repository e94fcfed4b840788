// RFC 3339 / ISO 8601 rendering of wall-clock time points, always in UTC ("...Z").
// Used by /tokens and by the log line timestamps; pure and thread-safe.
#pragma once

#include <chrono>
#include <string>

namespace msiproxy {

// "2026-11-29T05:00:00Z": whole seconds, truncated towards the past.
std::string to_rfc3339(std::chrono::system_clock::time_point tp);

// "2026-11-29T05:00:00.123Z": milliseconds, for log lines.
std::string to_rfc3339_ms(std::chrono::system_clock::time_point tp);

}  // namespace msiproxy
