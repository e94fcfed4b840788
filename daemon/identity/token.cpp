// Token response parsing, failure classification and the refresh/backoff schedule (pure).
#include "identity/token.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <ctime>

#include <nlohmann/json.hpp>

namespace msiproxy {

using namespace std::chrono_literals;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

std::string_view to_string(failure_kind k) {
    switch (k) {
        case failure_kind::unreachable:
            return "endpoint unreachable";
        case failure_kind::identity_not_found:
            return "identity not found";
        case failure_kind::throttled:
            return "throttled";
        case failure_kind::bad_response:
            return "bad response";
        case failure_kind::endpoint_error:
            return "endpoint error";
    }
    return "error";
}

namespace {

// Seconds a token field may hold, as a lifetime or since the epoch (2106): beyond it the value
// is nonsense, and turning it into system_clock's nanoseconds would overflow.
constexpr long long max_time_seconds = 1LL << 32;

// A double that fits in long long (the cast is undefined otherwise).
std::optional<long long> to_integer(double d) {
    if (!std::isfinite(d) || std::fabs(d) >= 9.0e18) return std::nullopt;
    return static_cast<long long>(d);
}

std::optional<seconds> bounded_seconds(std::optional<long long> n) {
    if (!n || *n > max_time_seconds || *n < -max_time_seconds) return std::nullopt;
    return seconds(*n);
}

std::optional<long long> as_integer(std::string_view s) {
    while (!s.empty() && s.front() == ' ')
        s.remove_prefix(1);
    while (!s.empty() && s.back() == ' ')
        s.remove_suffix(1);
    long long v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size()) {
        // "3599.0" and the like
        double d = 0;
        auto [p2, ec2] = std::from_chars(s.data(), s.data() + s.size(), d);
        if (ec2 != std::errc() || p2 != s.data() + s.size()) return std::nullopt;
        return to_integer(d);
    }
    return v;
}

// A JSON number or numeric string.
std::optional<long long> json_integer(const nlohmann::json& j) {
    if (j.is_number_integer()) return j.get<long long>();
    if (j.is_number_float()) {
        return to_integer(j.get<double>());
    }
    if (j.is_string()) return as_integer(j.get_ref<const std::string&>());
    return std::nullopt;
}

std::optional<sys_time> from_tm_utc(std::tm tm, int offset_seconds) {
    if (tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
        tm.tm_min > 59 || tm.tm_sec > 60 || tm.tm_year < 70) {
        return std::nullopt;
    }
    std::time_t t = timegm(&tm);
    if (t == static_cast<std::time_t>(-1) || t > max_time_seconds) return std::nullopt;
    return std::chrono::system_clock::from_time_t(t - offset_seconds);
}

// "+00:00", "-05:30", "Z", "" -> seconds east of UTC
std::optional<int> parse_offset(std::string_view s) {
    while (!s.empty() && s.front() == ' ')
        s.remove_prefix(1);
    if (s.empty() || s == "Z" || s == "z") return 0;
    if (s.size() != 6 || (s[0] != '+' && s[0] != '-') || s[3] != ':') return std::nullopt;
    auto h = as_integer(s.substr(1, 2));
    auto m = as_integer(s.substr(4, 2));
    if (!h || !m || *h > 23 || *m > 59) return std::nullopt;
    int off = static_cast<int>(*h * 3600 + *m * 60);
    return s[0] == '-' ? -off : off;
}

}  // namespace

std::optional<sys_time> parse_expires_on(std::string_view text) {
    if (auto n = as_integer(text)) {
        auto sec = bounded_seconds(n);
        if (!sec || *sec <= seconds(0)) return std::nullopt;
        return sys_time(*sec);
    }
    std::string s(text);
    std::tm tm{};
    int consumed = 0;
    // RFC 3339 / ISO 8601: 2024-10-18T19:51:37[.fraction](Z|+hh:mm)
    if (std::sscanf(s.c_str(), "%4d-%2d-%2d%*1[Tt ]%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
                    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) == 6) {
        std::string_view rest = std::string_view(s).substr(static_cast<std::size_t>(consumed));
        if (!rest.empty() && rest.front() == '.') {
            rest.remove_prefix(1);
            while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9')
                rest.remove_prefix(1);
        }
        auto off = parse_offset(rest);
        if (!off) return std::nullopt;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        return from_tm_utc(tm, *off);
    }
    // App Service 2017: "06/20/2019 02:57:58 +00:00" or "1/16/2020 5:24:12 AM +00:00"
    tm = {};
    consumed = 0;
    if (std::sscanf(s.c_str(), "%2d/%2d/%4d %2d:%2d:%2d%n", &tm.tm_mon, &tm.tm_mday, &tm.tm_year,
                    &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) == 6) {
        std::string_view rest = std::string_view(s).substr(static_cast<std::size_t>(consumed));
        while (!rest.empty() && rest.front() == ' ')
            rest.remove_prefix(1);
        if (rest.starts_with("AM") || rest.starts_with("PM")) {
            bool pm = rest.starts_with("PM");
            if (tm.tm_hour < 1 || tm.tm_hour > 12) return std::nullopt;
            tm.tm_hour = tm.tm_hour % 12 + (pm ? 12 : 0);
            rest.remove_prefix(2);
        }
        auto off = parse_offset(rest);
        if (!off) return std::nullopt;
        tm.tm_year -= 1900;
        tm.tm_mon -= 1;
        return from_tm_utc(tm, *off);
    }
    return std::nullopt;
}

fetch_outcome parse_token_response(std::string_view body, sys_time now) {
    auto bad = [](std::string msg) {
        return fetch_failure{failure_kind::bad_response, std::move(msg), true, std::nullopt, 200};
    };
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return bad("token response is not a JSON object");
    auto at = j.find("access_token");
    if (at == j.end() || !at->is_string() || at->get_ref<const std::string&>().empty()) {
        return bad("token response has no access_token");
    }
    access_token t;
    t.value = at->get<std::string>();
    t.obtained = now;

    std::optional<sys_time> relative;  // expires_in, anchored at our receive time
    std::optional<sys_time> absolute;  // expires_on, on the server's clock
    if (auto it = j.find("expires_in"); it != j.end()) {
        if (auto n = bounded_seconds(json_integer(*it))) relative = now + *n;
    }
    if (auto it = j.find("expires_on"); it != j.end()) {
        if (auto n = json_integer(*it)) {
            // Small numbers are relative lifetimes (MSAL .NET's rule), large ones epoch.
            if (auto sec = bounded_seconds(n)) {
                absolute = *n < 978307200 ? now + *sec : sys_time(*sec);
            }
        } else if (it->is_string()) {
            absolute = parse_expires_on(it->get_ref<const std::string&>());
        }
    }
    // expires_in counts from when the server answered, and we only see the answer later (a slow
    // endpoint, a retried request): when expires_on is also given and earlier, but still in
    // the future (no gross clock skew), it is the safer of the two.
    std::optional<sys_time> expires = relative ? relative : absolute;
    if (relative && absolute && *absolute > now && *absolute < *relative) expires = absolute;
    if (!expires) return bad("token response has no usable expires_in or expires_on");
    if (*expires <= now) return bad("token response says the token has already expired");
    t.expires_on = *expires;
    if (auto it = j.find("refresh_in"); it != j.end()) {
        if (auto n = bounded_seconds(json_integer(*it)); n && *n > seconds(0)) {
            t.refresh_on = now + *n;
        }
    }
    return t;
}

fetch_failure classify_http_failure(unsigned status, std::string_view body,
                                    std::string_view retry_after_header) {
    fetch_failure f;
    f.http_status = status;
    // The endpoint's own words: error_description, message, error.message, else the body.
    std::string detail;
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_discarded() && j.is_object()) {
        for (const char* key : {"error_description", "message", "Message"}) {
            if (auto it = j.find(key); it != j.end() && it->is_string()) {
                detail = it->get<std::string>();
                break;
            }
        }
        if (detail.empty()) {
            if (auto it = j.find("error"); it != j.end()) {
                if (it->is_string()) {
                    detail = it->get<std::string>();
                } else if (it->is_object() && it->contains("message") &&
                           (*it)["message"].is_string()) {
                    detail = (*it)["message"].get<std::string>();
                }
            }
        }
    }
    if (detail.empty()) detail = std::string(body.substr(0, 200));
    for (char& c : detail) {
        if (c == '\r' || c == '\n') c = ' ';
    }
    f.message = "HTTP " + std::to_string(status) + (detail.empty() ? "" : ": " + detail);
    // Capped at a day: backoff_delay waits 10 minutes at most anyway, and the value is later
    // converted to finer units.
    if (auto n = as_integer(retry_after_header); n && *n >= 0) {
        f.retry_after = seconds(std::min<long long>(*n, 24 * 3600));
    }

    if (status == 429) {
        f.kind = failure_kind::throttled;
    } else if (status == 404 || status == 408 || status == 410 || status >= 500) {
        f.kind = failure_kind::endpoint_error;
    } else {
        // 400 "Identity not found", "Multiple user assigned identities exist", 401, 403...:
        // asking again will not change the answer until the operator acts.
        f.kind = failure_kind::identity_not_found;
        f.retryable = false;
    }
    return f;
}

refresh_plan plan_refresh(const access_token& t, sys_time now, bool repeated, double jitter) {
    const auto life = duration_cast<milliseconds>(t.expires_on - now);
    // Never send a token in its last eighth of life, with the margin kept between 1 s and the
    // 5 minutes the Azure SDKs use.
    const auto margin = std::clamp<milliseconds>(life / 8, 1s, 5min);
    refresh_plan p;
    p.usable_until = t.expires_on - margin;
    // The latest useful refresh leaves one more margin for retries before the token goes stale.
    const sys_time latest = std::max(now, p.usable_until - margin);
    if (repeated) {
        // The endpoint handed back the token we already had (IMDS serves its own cache):
        // ask again near its end instead of at half of what is left, and never sooner than
        // 5 s, so that an endpoint stuck on an old token cannot drive a tight loop.
        p.refresh_at = std::max(latest, now + std::clamp<milliseconds>(life / 4, 5s, 5min));
        return p;
    }
    sys_time at;
    if (t.refresh_on) {
        at = *t.refresh_on;
    } else {
        // Half the lifetime, +-10 % of it so that many sidecars do not refresh in step.
        const auto half = life / 2;
        at = now + half + duration_cast<milliseconds>(half * (jitter - 0.5) * 0.2);
    }
    p.refresh_at = std::clamp(at, now + 1s, std::max(now + 1s, latest));
    return p;
}

milliseconds backoff_delay(int attempt, milliseconds cap, double jitter,
                           std::optional<seconds> retry_after) {
    attempt = std::clamp(attempt, 0, 30);
    double base =
        std::min<double>(static_cast<double>(cap.count()), 1000.0 * std::pow(2.0, attempt));
    auto d = milliseconds(static_cast<long long>(base * (0.8 + 0.4 * jitter)));
    if (retry_after) d = std::max<milliseconds>(d, std::min<milliseconds>(*retry_after, 10min));
    return d;
}

}  // namespace msiproxy
