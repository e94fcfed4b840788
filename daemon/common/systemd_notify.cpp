// libsystemd's sd_notify behind a small interface, compiled out without MSIPROXY_HAVE_SYSTEMD.
#include "common/systemd_notify.hpp"

#include <ctime>
#include <string>

#ifdef MSIPROXY_HAVE_SYSTEMD
#include <systemd/sd-daemon.h>
#endif

namespace msiproxy {

void sd_notify_message(std::string_view message) {
#ifdef MSIPROXY_HAVE_SYSTEMD
    std::string m(message);
    (void)::sd_notify(0, m.c_str());
#else
    (void)message;
#endif
}

void sd_notify_reloading() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
    sd_notify_message("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

std::optional<std::chrono::microseconds> sd_watchdog_interval() {
#ifdef MSIPROXY_HAVE_SYSTEMD
    uint64_t usec = 0;
    if (::sd_watchdog_enabled(0, &usec) > 0 && usec > 0) {
        return std::chrono::microseconds(usec);
    }
#endif
    return std::nullopt;
}

}  // namespace msiproxy
