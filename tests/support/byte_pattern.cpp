// Pattern generation and FNV-1a checksum for streamed test bodies.
// fill_pattern copies from a precomputed table so generating 256 MiB costs memcpy, not a loop.
#include "support/byte_pattern.hpp"

#include <array>
#include <cstring>
#include <vector>

namespace msiproxy::test {
namespace {

constexpr std::size_t period = 251;
// 64 KiB plus one period, so any window of up to 64 KiB starting at any phase is contiguous.
constexpr std::size_t table_size = 65536 + period;

const std::vector<char>& pattern_table() {
    static const std::vector<char> table = [] {
        std::vector<char> t(table_size);
        for (std::size_t i = 0; i < table_size; ++i)
            t[i] = pattern_byte(i);
        return t;
    }();
    return table;
}

}  // namespace

void fill_pattern(char* out, std::size_t n, std::uint64_t offset) {
    const auto& table = pattern_table();
    while (n > 0) {
        const std::size_t phase = static_cast<std::size_t>(offset % period);
        const std::size_t k = std::min<std::size_t>(n, table_size - period);
        std::memcpy(out, table.data() + phase, k);
        out += k;
        n -= k;
        offset += k;
    }
}

void checksum::update(const void* data, std::size_t n) {
    const auto* p = static_cast<const unsigned char*>(data);
    std::uint64_t h = state_;
    for (std::size_t i = 0; i < n; ++i) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    state_ = h;
    bytes_ += n;
}

std::uint64_t pattern_checksum(std::uint64_t n) {
    checksum sum;
    std::array<char, 65536> buf;
    std::uint64_t done = 0;
    while (done < n) {
        const auto k = static_cast<std::size_t>(std::min<std::uint64_t>(buf.size(), n - done));
        fill_pattern(buf.data(), k, done);
        sum.update(buf.data(), k);
        done += k;
    }
    return sum.value();
}

}  // namespace msiproxy::test
