// Route matching and target rewriting; see router.hpp for the rules.
#include "router/router.hpp"

#include <algorithm>

namespace msiproxy {

namespace {

// Host specificity: higher is more specific; -1 = no match. A wildcard's rank grows with the
// length of its suffix so that "*.b.example.com" beats "*.example.com".
long host_rank(const route& r, std::string_view host) {
    if (r.host.empty()) return 0;
    if (r.host.starts_with("*.")) {
        std::string_view suffix = std::string_view(r.host).substr(1);  // ".example.com"
        if (host.size() > suffix.size() && host.ends_with(suffix)) {
            return 1 + static_cast<long>(suffix.size());
        }
        return -1;
    }
    return host == r.host ? 1L << 20 : -1;
}

}  // namespace

std::string& to_lower_ascii(std::string& s) {
    for (char& c : s) {
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    return s;
}

bool path_has_prefix(std::string_view path, std::string_view prefix) {
    if (prefix.empty() || prefix == "/") return true;
    if (!path.starts_with(prefix)) return false;
    if (prefix.back() == '/' || path.size() == prefix.size()) return true;
    char next = path[prefix.size()];
    return next == '/' || next == '?';
}

router::router(const std::vector<route>& routes) {
    routes_.reserve(routes.size());
    for (const auto& r : routes)
        routes_.push_back(&r);
}

const route* router::match(std::string_view host, std::string_view path) const {
    const route* best = nullptr;
    long best_host = -1;
    std::size_t best_prefix = 0;
    for (const route* r : routes_) {
        long rank = host_rank(*r, host);
        if (rank < 0 || !path_has_prefix(path, r->path_prefix)) continue;
        std::size_t plen = r->path_prefix.size();
        if (rank > best_host || (rank == best_host && plen > best_prefix)) {
            best = r;
            best_host = rank;
            best_prefix = plen;
        }
    }
    return best;
}

const route* router::match_host_only(std::string_view host) const {
    const route* best = nullptr;
    long best_host = 0;
    for (const route* r : routes_) {
        long rank = host_rank(*r, host);
        if (rank > best_host) {
            best = r;
            best_host = rank;
        }
    }
    return best;
}

std::string upstream_target_path(const route& r, std::string_view path_and_query) {
    std::string_view rest = path_and_query;
    if (r.strip_prefix && r.path_prefix != "/" && rest.starts_with(r.path_prefix)) {
        rest.remove_prefix(r.path_prefix.size());
    }
    std::string out;
    out.reserve(r.upstream.base_path.size() + rest.size() + 1);
    out += r.upstream.base_path;
    if (rest.empty() || rest.front() != '/') out += '/';
    out += rest;
    return out;
}

}  // namespace msiproxy
