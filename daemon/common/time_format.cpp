// to_rfc3339: gmtime_r-based, no locale involved.
#include "common/time_format.hpp"

#include <cstdio>
#include <ctime>

namespace msiproxy {

std::string to_rfc3339(std::chrono::system_clock::time_point t) {
    const std::time_t secs =
        std::chrono::system_clock::to_time_t(std::chrono::time_point_cast<std::chrono::seconds>(t));
    std::tm tm{};
    if (!gmtime_r(&secs, &tm)) return "invalid-time";
    char buf[80];
    std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

}  // namespace msiproxy
