// Peak resident memory of the test process, to show that transfers stream: reset the peak,
// move a big body, read the peak again. Linux /proc only.
#pragma once

#include <cstdint>
#include <optional>

namespace msiproxy::test {

// Resets VmHWM to the current RSS ("echo 5 > /proc/self/clear_refs"). False when the kernel
// refuses (then peak_rss_bytes() keeps the old, higher peak: growth checks get weaker, not false).
bool reset_peak_rss();
// VmHWM and VmRSS from /proc/self/status, in bytes; nullopt when unreadable.
std::optional<std::uint64_t> peak_rss_bytes();
std::optional<std::uint64_t> current_rss_bytes();

// False under AddressSanitizer: its quarantine keeps up to 256 MiB of freed memory resident and
// its shadow memory grows with every allocation, so RSS says nothing about the code's buffering.
constexpr bool rss_reflects_buffering() {
#if defined(__SANITIZE_ADDRESS__)
    return false;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    return false;
#else
    return true;
#endif
#else
    return true;
#endif
}

}  // namespace msiproxy::test
