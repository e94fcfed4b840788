// Tokens as the identity layer hands them out, the outcome of one fetch, and the pure policy
// pieces: response parsing, failure classification and the refresh/backoff schedule.
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace msiproxy {

using sys_time = std::chrono::system_clock::time_point;

struct access_token {
    std::string value;  // never logged, never rendered by admin endpoints
    sys_time expires_on{};
    sys_time obtained{};
    std::optional<sys_time> refresh_on;  // server's suggestion (refresh_in), when given
};

enum class failure_kind {
    unreachable,         // connect/DNS/timeout
    identity_not_found,  // 400 "identity not found" and the like: permanent until reload
    throttled,           // 429
    bad_response,        // 2xx we could not use
    endpoint_error,      // other HTTP error status
};

struct fetch_failure {
    failure_kind kind = failure_kind::endpoint_error;
    std::string message;  // for operators: the endpoint's own words where it gave some
    bool retryable = true;
    std::optional<std::chrono::seconds> retry_after;
    unsigned http_status = 0;
};

using fetch_outcome = std::variant<access_token, fetch_failure>;

std::string_view to_string(failure_kind k);

// Parses a token endpoint's JSON body (IMDS, App Service 2017/2019, Arc, Service Fabric, Entra
// v2). expires_in / expires_on / refresh_in may be numbers or numeric strings; expires_on may
// also be epoch seconds, RFC 3339, or the App Service 2017 "MM/DD/YYYY hh:mm:ss [AM|PM] +00:00".
// A relative expires_in is anchored at `now`. Errors name what is missing or wrong.
fetch_outcome parse_token_response(std::string_view body, sys_time now);

// Parses an absolute expiry in any of the formats above; nullopt when unrecognised.
std::optional<sys_time> parse_expires_on(std::string_view text);

// Classifies a non-2xx answer (Azure SDK retry classes: 404, 408, 410, 429, 5xx retryable;
// other 4xx permanent). retry_after_header is the raw Retry-After value, may be empty.
fetch_failure classify_http_failure(unsigned status, std::string_view body,
                                    std::string_view retry_after_header);

// When to refresh a fresh token and until when it may be sent.
struct refresh_plan {
    sys_time refresh_at;
    sys_time usable_until;  // expires_on minus a safety margin
};

// jitter in [0, 1). `repeated` = the endpoint returned the token we already had (IMDS serves
// its own cache): schedule late rather than halving again, so no tight loop can form.
refresh_plan plan_refresh(const access_token& t, sys_time now, bool repeated, double jitter);

// Delay before retry number `attempt` (0-based) after a failure: 1 s doubling to `cap`,
// +-20 % jitter (jitter in [0,1)), at least Retry-After when given (capped at 10 min).
std::chrono::milliseconds backoff_delay(int attempt, std::chrono::milliseconds cap, double jitter,
                                        std::optional<std::chrono::seconds> retry_after);

}  // namespace msiproxy
