// sd_notify(3) messages to systemd when NOTIFY_SOCKET is set; no-ops otherwise or when built
// without libsystemd.
#pragma once

#include <chrono>
#include <optional>
#include <string_view>

namespace msiproxy {

// Sends one notification ("READY=1", "STOPPING=1", "STATUS=..."). Never throws.
void sd_notify_message(std::string_view message);

// "RELOADING=1" with MONOTONIC_USEC, as systemd 253+ wants for Type=notify-reload.
void sd_notify_reloading();

// The watchdog interval systemd expects pings at (WATCHDOG_USEC), if any.
std::optional<std::chrono::microseconds> sd_watchdog_interval();

}  // namespace msiproxy
