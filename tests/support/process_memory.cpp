// process_memory: /proc/self/clear_refs and /proc/self/status parsing.
// Values in /proc/self/status are in KiB; we return bytes.
#include "support/process_memory.hpp"

#include <fstream>
#include <sstream>
#include <string>

namespace msiproxy::test {
namespace {

std::optional<std::uint64_t> status_kib(const std::string& key) {
    std::ifstream in("/proc/self/status");
    std::string line;
    while (std::getline(in, line)) {
        if (line.rfind(key + ":", 0) != 0) continue;
        std::istringstream fields(line.substr(key.size() + 1));
        std::uint64_t kib = 0;
        if (fields >> kib) return kib * 1024;
    }
    return std::nullopt;
}

}  // namespace

bool reset_peak_rss() {
    std::ofstream out("/proc/self/clear_refs");
    out << "5";
    out.flush();
    return static_cast<bool>(out);
}

std::optional<std::uint64_t> peak_rss_bytes() {
    return status_kib("VmHWM");
}
std::optional<std::uint64_t> current_rss_bytes() {
    return status_kib("VmRSS");
}

}  // namespace msiproxy::test
