// Test config templates: "{name}" placeholders filled from a map (ports, URLs, file paths),
// so one TOML text serves every test that only differs in where its fakes listen.
#pragma once

#include <map>
#include <string>
#include <string_view>

namespace msiproxy::test {

// Replaces every "{name}" whose name is a key of `vars`; other braces (TOML inline tables,
// "Bearer {token}") are left alone.
std::string substitute(std::string_view text, const std::map<std::string, std::string>& vars);

}  // namespace msiproxy::test
