// Pure routing: which [[route]] serves a request (INTERFACE.md "Matching"), and the path the
// upstream receives. No I/O; called once per request on the I/O thread.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "config/config.hpp"

namespace msiproxy {

class router {
  public:
    // Keeps pointers into `routes`, which must outlive the router.
    explicit router(const std::vector<route>& routes);

    // host: lower-case host name without port ("" when the request named none); path: the
    // request's path, with or without query. Returns nullptr when no route matches.
    // Most specific wins: exact host > longest wildcard > any host, then longest path_prefix.
    const route* match(std::string_view host, std::string_view path) const;

    // The route an explicit host is routed to, ignoring routes without a host: used to refuse
    // CONNECT to routed hosts (the app must call them over http:// to get a token).
    const route* match_host_only(std::string_view host) const;

  private:
    std::vector<const route*> routes_;
};

// True when `path` (query allowed) lies under `prefix` on a segment boundary:
// "/a" covers "/a", "/a/b", "/a?x" but not "/ab"; "/" covers everything.
bool path_has_prefix(std::string_view path, std::string_view prefix);

// The request target sent upstream: the route's base path, then the request path with the
// prefix removed when strip_prefix is set; the query string is kept. Always starts with '/'.
std::string upstream_target_path(const route& r, std::string_view path_and_query);

// Lower-cases ASCII in place and returns the argument, for host names.
std::string& to_lower_ascii(std::string& s);

}  // namespace msiproxy
