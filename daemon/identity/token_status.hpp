// What the admin endpoints may know about a cached token: its timing and health, never its
// value. Produced by token_cache::status(), rendered by /tokens and /readyz.
#pragma once

#include <chrono>
#include <optional>
#include <string>

namespace msiproxy {

struct token_status {
    std::string identity;  // identity_selector::describe(), e.g. "system" or "client_id=..."
    std::string resource;
    std::string state;    // "pending" | "valid" | "refreshing" | "expired" | "failed"
    bool usable = false;  // a token that may be sent right now exists
    std::optional<std::chrono::system_clock::time_point> expires_on;
    std::optional<std::chrono::system_clock::time_point> refresh_at;
    std::optional<std::chrono::system_clock::time_point> last_refresh;
    std::string last_error;  // "" when the last attempt succeeded
};

}  // namespace msiproxy
