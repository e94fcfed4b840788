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

}  // namespace msiproxy::test
