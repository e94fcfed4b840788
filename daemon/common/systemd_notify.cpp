// The sd_notify protocol (systemd's "Interface Portability and Stability" promise covers it):
// one datagram per message to the AF_UNIX socket named by $NOTIFY_SOCKET. Spoken directly
// rather than through libsystemd, which would bring six more shared libraries and about 1 MiB
// of resident memory into a daemon whose idle footprint is a goal.
#include "common/systemd_notify.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>

namespace msiproxy {

void sd_notify_message(std::string_view message) {
    const char* path = std::getenv("NOTIFY_SOCKET");
    if (!path || (path[0] != '/' && path[0] != '@')) return;  // unset, or a kind we do not speak
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    const std::size_t len = std::strlen(path);
    if (len >= sizeof(addr.sun_path)) return;
    std::memcpy(addr.sun_path, path, len);
    if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
    const auto addr_len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + len);

    const int fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    ssize_t sent;
    do {
        sent = ::sendto(fd, message.data(), message.size(), MSG_NOSIGNAL,
                        reinterpret_cast<const sockaddr*>(&addr), addr_len);
    } while (sent < 0 && errno == EINTR);
    ::close(fd);
}

void sd_notify_reloading() {
    timespec ts{};
    clock_gettime(CLOCK_MONOTONIC, &ts);
    auto usec = static_cast<unsigned long long>(ts.tv_sec) * 1000000ULL +
                static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
    sd_notify_message("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

std::optional<std::chrono::microseconds> sd_watchdog_interval() {
    auto number = [](const char* s, unsigned long long& out) {
        if (!s || !*s) return false;
        const char* end = s + std::strlen(s);
        auto [p, ec] = std::from_chars(s, end, out);
        return ec == std::errc{} && p == end;
    };
    unsigned long long usec = 0;
    if (!number(std::getenv("WATCHDOG_USEC"), usec) || usec == 0) return std::nullopt;
    // WATCHDOG_PID, when set, names the process the watchdog is meant for.
    if (const char* pid = std::getenv("WATCHDOG_PID"); pid && *pid) {
        unsigned long long p = 0;
        if (!number(pid, p) || p != static_cast<unsigned long long>(::getpid()))
            return std::nullopt;
    }
    return std::chrono::microseconds(usec);
}

}  // namespace msiproxy
