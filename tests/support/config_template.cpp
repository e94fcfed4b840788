// substitute(): the "{name}" templating of test configs. Kept apart from proxy_fixture.cpp so
// the unit tests can use it without linking the app.
#include "support/config_template.hpp"

namespace msiproxy::test {

std::string substitute(std::string_view text, const std::map<std::string, std::string>& vars) {
    std::string out;
    out.reserve(text.size());
    std::size_t i = 0;
    while (i < text.size()) {
        if (text[i] == '{') {
            const auto close = text.find('}', i + 1);
            if (close != std::string_view::npos) {
                const auto it = vars.find(std::string(text.substr(i + 1, close - i - 1)));
                if (it != vars.end()) {
                    out += it->second;
                    i = close + 1;
                    continue;
                }
            }
        }
        out += text[i++];
    }
    return out;
}

}  // namespace msiproxy::test
