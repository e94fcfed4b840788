// sd_notify through libsystemd: datagrams reach $NOTIFY_SOCKET (here an abstract socket), and
// the watchdog interval comes from WATCHDOG_USEC, for this process only (WATCHDOG_PID).
#include <catch2/catch.hpp>

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <string>

#include "common/systemd_notify.hpp"

using namespace msiproxy;

#ifdef MSIPROXY_HAVE_SYSTEMD  // without libsystemd every call is a no-op

namespace {

// A datagram socket bound to `name` ("@..." abstract, or a path); receives without blocking.
struct notify_listener {
    int fd = -1;
    explicit notify_listener(const std::string& name) {
        fd = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        sockaddr_un addr{};
        addr.sun_family = AF_UNIX;
        std::memcpy(addr.sun_path, name.data(), name.size());
        if (name[0] == '@') addr.sun_path[0] = '\0';
        ::bind(fd, reinterpret_cast<sockaddr*>(&addr),
               static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + name.size()));
        timeval tv{2, 0};
        ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~notify_listener() { ::close(fd); }
    std::string receive() const {
        char buf[512];
        ssize_t n = ::recv(fd, buf, sizeof buf, 0);
        return n > 0 ? std::string(buf, static_cast<std::size_t>(n)) : std::string();
    }
};

}  // namespace

TEST_CASE("sd_notify: messages reach an abstract NOTIFY_SOCKET", "[unit][systemd]") {
    const std::string name = "@msiproxy-notify-test-" + std::to_string(::getpid());
    notify_listener l(name);
    ::setenv("NOTIFY_SOCKET", name.c_str(), 1);
    sd_notify_message("READY=1");
    CHECK(l.receive() == "READY=1");
    sd_notify_reloading();
    auto reloading = l.receive();
    CHECK(reloading.rfind("RELOADING=1\nMONOTONIC_USEC=", 0) == 0);
    ::unsetenv("NOTIFY_SOCKET");
    sd_notify_message("STOPPING=1");  // no socket: nothing sent, nothing thrown
}

TEST_CASE("sd_notify: the watchdog interval honours WATCHDOG_PID", "[unit][systemd]") {
    ::unsetenv("WATCHDOG_PID");
    ::unsetenv("WATCHDOG_USEC");
    CHECK_FALSE(sd_watchdog_interval());
    ::setenv("WATCHDOG_USEC", "30000000", 1);
    REQUIRE(sd_watchdog_interval());
    CHECK(*sd_watchdog_interval() == std::chrono::seconds(30));
    ::setenv("WATCHDOG_PID", std::to_string(::getpid()).c_str(), 1);
    CHECK(sd_watchdog_interval());
    ::setenv("WATCHDOG_PID", "1", 1);  // meant for another process
    CHECK_FALSE(sd_watchdog_interval());
    ::unsetenv("WATCHDOG_PID");
    ::setenv("WATCHDOG_USEC", "30s", 1);  // not a number
    CHECK_FALSE(sd_watchdog_interval());
    ::unsetenv("WATCHDOG_USEC");
}

#endif  // MSIPROXY_HAVE_SYSTEMD
