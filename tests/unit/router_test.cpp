// Route matching precedence, prefix boundaries and upstream target rewriting.
#include <catch2/catch.hpp>

#include "config/config.hpp"
#include "router/router.hpp"

using namespace msiproxy;

namespace {

config routes_config() {
    return load_config_string(R"(
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
name = "wild"
host = "*.example.com"
upstream = "https://wild.example"
resource = "r"
[[route]]
name = "wild-deep"
host = "*.deep.example.com"
upstream = "https://deep.example"
resource = "r"
[[route]]
name = "exact"
host = "api.example.com"
path_prefix = "/v1/"
upstream = "https://exact.example"
resource = "r"
[[route]]
name = "exact-root"
host = "api.example.com"
upstream = "https://exact.example"
resource = "r"
)");
}

std::string name_of(const route* r) {
    return r ? r->name : "(none)";
}

}  // namespace

TEST_CASE("router: most specific host wins, then longest prefix", "[unit][router]") {
    auto cfg = routes_config();
    router rt(cfg.routes);
    CHECK(name_of(rt.match("api.example.com", "/v1/users")) == "exact");
    CHECK(name_of(rt.match("api.example.com", "/v2/users")) == "exact-root");
    CHECK(name_of(rt.match("other.example.com", "/svc/x")) == "wild");
    CHECK(name_of(rt.match("a.deep.example.com", "/")) == "wild-deep");
    CHECK(name_of(rt.match("example.com", "/")) == "any-root");  // a wildcard needs a label
    CHECK(name_of(rt.match("localhost", "/svc/x")) == "any-svc");
    CHECK(name_of(rt.match("localhost", "/svcx")) == "any-root");
    CHECK(name_of(rt.match("", "/svc?q=1")) == "any-svc");
}

TEST_CASE("router: nothing matches without a catch-all", "[unit][router]") {
    auto cfg = load_config_string(R"(
[[route]]
host = "graph.microsoft.com"
upstream = "https://graph.microsoft.com"
resource = "https://graph.microsoft.com"
)");
    router rt(cfg.routes);
    CHECK(rt.match("example.org", "/") == nullptr);
    CHECK(rt.match("graph.microsoft.com.evil.org", "/") == nullptr);
    CHECK(rt.match("graph.microsoft.com", "/v1.0/me") != nullptr);
    CHECK(rt.match_host_only("graph.microsoft.com") != nullptr);
    CHECK(rt.match_host_only("example.org") == nullptr);
}

TEST_CASE("router: CONNECT matching ignores routes without a host", "[unit][router]") {
    auto cfg = routes_config();
    router rt(cfg.routes);
    CHECK(name_of(rt.match_host_only("api.example.com")).starts_with("exact"));
    CHECK(name_of(rt.match_host_only("x.example.com")) == "wild");
    CHECK(rt.match_host_only("localhost") == nullptr);
}

TEST_CASE("router: prefix boundaries", "[unit][router]") {
    CHECK(path_has_prefix("/a", "/a"));
    CHECK(path_has_prefix("/a/b", "/a"));
    CHECK(path_has_prefix("/a?x=1", "/a"));
    CHECK_FALSE(path_has_prefix("/ab", "/a"));
    CHECK(path_has_prefix("/a/b", "/a/"));
    CHECK_FALSE(path_has_prefix("/a", "/a/"));
    CHECK(path_has_prefix("/anything", "/"));
}

TEST_CASE("router: upstream target keeps the query and prepends the base path", "[unit][router]") {
    auto cfg = routes_config();
    const route& svc = cfg.routes[1];
    CHECK(upstream_target_path(svc, "/svc/items?id=3") == "/base/items?id=3");
    CHECK(upstream_target_path(svc, "/svc") == "/base/");
    CHECK(upstream_target_path(svc, "/svc?x") == "/base/?x");
    const route& root = cfg.routes[0];
    CHECK(upstream_target_path(root, "/p/q?r") == "/p/q?r");
    route trailing = svc;
    trailing.path_prefix = "/svc/";
    CHECK(upstream_target_path(trailing, "/svc/x") == "/base/x");
}
