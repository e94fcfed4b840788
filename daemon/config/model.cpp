// The config model's small methods (address and selector strings, error formatting) and the
// route table printed by `msiproxy --check`.
#include <algorithm>
#include <array>
#include <string>
#include <vector>

#include "config/config.hpp"

namespace msiproxy {

namespace {

std::string join_lines(const std::vector<config_error>& errors) {
    std::string out;
    for (const auto& e : errors) {
        if (!out.empty()) out += '\n';
        out += e.format();
    }
    return out;
}

}  // namespace

std::string listen_address::to_string() const {
    const bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

std::string identity_selector::describe() const {
    if (!client_id.empty()) return "client_id=" + client_id;
    if (!object_id.empty()) return "object_id=" + object_id;
    if (!resource_id.empty()) return "resource_id=" + resource_id;
    return "system";
}

std::string config_error::format() const {
    std::string out = file;
    if (pos.line > 0) {
        out += ":" + std::to_string(pos.line);
        if (pos.column > 0) out += ":" + std::to_string(pos.column);
    }
    out += ": ";
    if (!key.empty()) out += key + ": ";
    out += message;
    return out;
}

config_exception::config_exception(std::vector<config_error> errors)
    : std::runtime_error(join_lines(errors)), errors_(std::move(errors)) {}

std::string describe_routes(const config& cfg) {
    if (cfg.routes.empty()) {
        return cfg.proxy.unmatched == unmatched_policy::deny
                   ? "no routes: every request is denied (unmatched = \"deny\")\n"
                   : "no routes: requests are forwarded without a token (unmatched = "
                     "\"forward\")\n";
    }
    // Columns are padded to the widest cell so that the table reads at a glance.
    constexpr std::size_t columns = 6;
    std::vector<std::array<std::string, columns>> rows;
    for (const route& r : cfg.routes) {
        const identity_selector& id = r.identity.empty() ? cfg.identity.selector : r.identity;
        rows.push_back({
            r.name,
            "host=" + (r.host.empty() ? std::string("(any)") : r.host),
            "prefix=" + r.path_prefix + (r.strip_prefix ? " (stripped)" : ""),
            "-> " + r.upstream.url,
            "resource=" + r.resource,
            "identity=" + id.describe(),
        });
    }
    std::array<std::size_t, columns> width{};
    for (const auto& row : rows) {
        for (std::size_t c = 0; c < columns; ++c)
            width[c] = std::max(width[c], row[c].size());
    }
    std::string out;
    for (const auto& row : rows) {
        std::string line;
        for (std::size_t c = 0; c < columns; ++c) {
            line += row[c];
            if (c + 1 < columns) line += std::string(width[c] - row[c].size() + 2, ' ');
        }
        out += line + "\n";
    }
    return out;
}

}  // namespace msiproxy
