// Duration strings of config.toml ("250ms", "10s", "5m", "1h", "1.5s") -> milliseconds.
// Exact decimal arithmetic: no floating point, so "0.1s" is exactly 100ms.
#include <cstdint>
#include <string_view>

#include "config/config.hpp"

namespace msiproxy {

namespace {

// Large enough for any sane timeout, small enough that digit accumulation cannot overflow.
constexpr std::uint64_t max_milliseconds = std::uint64_t{1} << 53;

bool is_digit(char c) {
    return c >= '0' && c <= '9';
}

}  // namespace

bool parse_duration(std::string_view text, duration& out) {
    std::size_t i = 0;
    std::uint64_t whole = 0;
    std::size_t whole_digits = 0;
    for (; i < text.size() && is_digit(text[i]); ++i, ++whole_digits) {
        whole = whole * 10 + static_cast<std::uint64_t>(text[i] - '0');
        if (whole > max_milliseconds) return false;
    }
    if (whole_digits == 0) return false;  // no sign, no ".5s", no bare unit

    // Fraction kept as numerator / 10^digits so that the unit conversion stays exact.
    std::uint64_t frac = 0;
    std::uint64_t frac_scale = 1;
    if (i < text.size() && text[i] == '.') {
        ++i;
        std::size_t frac_digits = 0;
        for (; i < text.size() && is_digit(text[i]); ++i, ++frac_digits) {
            if (frac_digits >= 9) return false;  // finer than a nanosecond means nothing here
            frac = frac * 10 + static_cast<std::uint64_t>(text[i] - '0');
            frac_scale *= 10;
        }
        if (frac_digits == 0) return false;  // "1.s"
    }

    const std::string_view unit = text.substr(i);
    std::uint64_t unit_ms = 0;
    if (unit == "ms") {
        unit_ms = 1;
    } else if (unit == "s") {
        unit_ms = 1000;
    } else if (unit == "m") {
        unit_ms = 60 * 1000;
    } else if (unit == "h") {
        unit_ms = 60 * 60 * 1000;
    } else {
        return false;  // unitless or unknown unit: a typo must not become milliseconds
    }

    if (whole > max_milliseconds / unit_ms) return false;
    const std::uint64_t frac_ms_scaled = frac * unit_ms;  // < 10^9 * 3.6e6, fits in 64 bits
    // The model counts whole milliseconds; "1.5ms" would have to be rounded, so refuse it.
    if (frac_ms_scaled % frac_scale != 0) return false;
    const std::uint64_t total = whole * unit_ms + frac_ms_scaled / frac_scale;
    if (total > max_milliseconds) return false;

    out = duration(static_cast<duration::rep>(total));
    return true;
}

}  // namespace msiproxy
