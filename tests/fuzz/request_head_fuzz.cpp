// Fuzz target: a client's bytes as the session reads them: head end, raw syntax check, Beast's
// request parser, then the forwarding decisions (framing rule, target, route) and the body.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include "config/config.hpp"
#include "listener/request_head.hpp"
#include "router/router.hpp"

namespace http = boost::beast::http;

namespace {

constexpr std::size_t header_limit = 8192;  // proxy.max_header_bytes' default

const msiproxy::config& fixed_config() {
    static const auto cfg = msiproxy::load_config_string(R"(
[[route]]
name = "svc"
path_prefix = "/svc"
strip_prefix = true
upstream = "https://svc.example/base"
resource = "r"
[[route]]
name = "vault"
host = "*.vault.azure.net"
upstream = "https://kv.example"
resource = "https://vault.azure.net"
)");
    return cfg;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
    static const msiproxy::router routes(fixed_config().routes);
    std::string_view data(reinterpret_cast<const char*>(bytes), size);

    // As session::read_head: skip empty lines before the request line, find the empty line.
    while (data.size() >= 2 && data[0] == '\r' && data[1] == '\n')
        data.remove_prefix(2);
    std::size_t end = msiproxy::find_head_end(data);
    if (end == std::string_view::npos || end > header_limit) return 0;
    std::string_view head = data.substr(0, end);
    if (!msiproxy::raw_head_is_clean(head)) return 0;

    http::request_parser<http::buffer_body> p;
    p.header_limit(static_cast<std::uint32_t>(header_limit));
    p.body_limit(boost::none);
    boost::system::error_code ec;
    std::size_t used = p.put(boost::asio::buffer(head.data(), head.size()), ec);
    if (ec || used != head.size() || !p.is_header_done()) return 0;

    // As session::handle: the framing rule, then the target and the route.
    auto& req = p.get();
    if (!msiproxy::transfer_encoding_acceptable(req.count(http::field::transfer_encoding),
                                                req[http::field::transfer_encoding],
                                                req.has_content_length())) {
        return 0;
    }
    if (req.method() != http::verb::connect) {
        auto hosts = req.equal_range(http::field::host);
        auto count = static_cast<std::size_t>(std::distance(hosts.first, hosts.second));
        msiproxy::target_info t;
        std::string why;
        if (msiproxy::parse_request_target(req.target(), count, req[http::field::host], t, why)) {
            if (t.path.empty() || t.path.front() != '/') __builtin_trap();
            if (const auto* r = routes.match(t.host, t.path)) {
                req.target(msiproxy::upstream_target_path(*r, t.path));
                req.set(http::field::host, r->upstream.authority);
            }
        } else if (why.empty()) {
            __builtin_trap();
        }
    }

    // The body as the relay reads it, through a small buffer_body window.
    std::string_view rest = data.substr(end);
    char window[512];
    for (int rounds = 0; !p.is_done() && !rest.empty() && rounds < 10000; ++rounds) {
        req.body().data = window;
        req.body().size = sizeof window;
        std::size_t n = p.put(boost::asio::buffer(rest.data(), rest.size()), ec);
        if (ec == http::error::need_buffer) ec = {};
        if (ec) break;
        rest.remove_prefix(n);
        if (n == 0 && req.body().size != 0) break;  // needs more input than there is
    }
    return 0;
}
