// RFC 3339 rendering of system_clock time points in UTC.
// gmtime_r rather than std::chrono::format: g++ 12 has no <format>.
#include "common/time_format.hpp"

#include <cstdio>
#include <ctime>

namespace msiproxy {

namespace {

// floor() so that instants before the epoch still land in the right second.
std::string format_utc(std::chrono::system_clock::time_point tp, bool with_millis) {
    using namespace std::chrono;
    const auto ms = floor<milliseconds>(tp.time_since_epoch());
    const auto secs = floor<seconds>(ms);
    const auto millis = (ms - secs).count();
    const std::time_t t = static_cast<std::time_t>(secs.count());
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[48];
    int n = 0;
    if (with_millis) {
        n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                          static_cast<int>(millis));
    } else {
        n = std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                          tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    }
    return std::string(buf, n > 0 ? static_cast<std::size_t>(n) : 0);
}

}  // namespace

std::string to_rfc3339(std::chrono::system_clock::time_point tp) {
    return format_utc(tp, false);
}

std::string to_rfc3339_ms(std::chrono::system_clock::time_point tp) {
    return format_utc(tp, true);
}

}  // namespace msiproxy
