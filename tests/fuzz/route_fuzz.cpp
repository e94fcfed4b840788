// Fuzz target: route matching and upstream path rewriting for any host and path, against a
// fixed set of routes covering exact, wildcard and any-host routes with and without prefixes.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "config/config.hpp"
#include "router/router.hpp"

namespace {

const msiproxy::config& fixed_config() {
    static const auto cfg = msiproxy::load_config_string(R"(
[[route]]
name = "any-root"
upstream = "https://any.example"
resource = "r"
[[route]]
name = "any-svc"
path_prefix = "/svc"
strip_prefix = true
upstream = "https://svc.example/base"
resource = "r"
[[route]]
name = "any-slash"
path_prefix = "/slash/"
strip_prefix = true
upstream = "https://svc.example/base/"
resource = "r"
[[route]]
name = "wild"
host = "*.example.com"
upstream = "https://wild.example"
resource = "r"
[[route]]
name = "wild-deep"
host = "*.deep.example.com"
path_prefix = "/d"
strip_prefix = true
upstream = "https://deep.example"
resource = "r"
[[route]]
name = "exact"
host = "api.example.com"
path_prefix = "/v1/"
upstream = "https://exact.example"
resource = "r"
)");
    return cfg;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    static const msiproxy::router routes(fixed_config().routes);
    // Input: host, a NUL byte, then path (all of it is the path when there is no NUL).
    std::string_view in(reinterpret_cast<const char*>(data), size);
    std::string host;
    std::string_view path = in;
    if (auto nul = in.find('\0'); nul != std::string_view::npos) {
        host = std::string(in.substr(0, nul));
        path = in.substr(nul + 1);
    }
    msiproxy::to_lower_ascii(host);
    if (const auto* r = routes.match(host, path)) {
        std::string target = msiproxy::upstream_target_path(*r, path);
        if (target.empty() || target.front() != '/') __builtin_trap();
    }
    (void)routes.match_host_only(host);
    for (const auto& r : fixed_config().routes) {
        (void)msiproxy::path_has_prefix(path, r.path_prefix);
        (void)msiproxy::upstream_target_path(r, path);
    }
    return 0;
}
