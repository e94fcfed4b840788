// RFC 3339 UTC timestamps ("2026-11-29T06:00:00Z") for logs, /tokens and `msiproxy token`.
#pragma once

#include <chrono>
#include <string>

namespace msiproxy {

// Whole seconds, UTC, "Z" suffix; the epoch for a default-constructed time point.
std::string to_rfc3339(std::chrono::system_clock::time_point t);

}  // namespace msiproxy
