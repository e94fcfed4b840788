// Fuzz target: config.toml parsing and validation. Any input must either load or throw
// config_exception; anything else (crash, other exception, sanitizer report) is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text(reinterpret_cast<const char*>(data), size);
    try {
        auto cfg = msiproxy::load_config_string(text, "fuzz.toml");
        (void)cfg;
    } catch (const msiproxy::config_exception& e) {
        (void)e.errors().size();
    }
    return 0;
}
