// Unit tests of the config module: defaults, every key, every class of error with its position
// and key, durations, the --check route table, and that the shipped config files load.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.hpp"

using namespace std::chrono_literals;

namespace msiproxy {

namespace {

// The errors a config produces; fails the test when it loads.
std::vector<config_error> errors_of(const std::string& text) {
    try {
        load_config_string(text, "test.toml");
    } catch (const config_exception& e) {
        return e.errors();
    }
    FAIL("expected the config to be rejected:\n" << text);
    return {};
}

// The one error expected from `text`; fails the test (printing all) when there is not exactly one.
config_error single_error(const std::string& text) {
    const auto errors = errors_of(text);
    INFO("errors:");
    for (const auto& e : errors)
        INFO(e.format());
    REQUIRE(errors.size() == 1);
    return errors.front();
}

bool contains(const std::string& haystack, const std::string& needle) {
    return haystack.find(needle) != std::string::npos;
}

// A valid route to append other keys to.
const std::string graph_route =
    "[[route]]\n"
    "upstream = \"https://graph.microsoft.com\"\n"
    "resource = \"https://graph.microsoft.com\"\n";

}  // namespace

TEST_CASE("an empty file gives the documented defaults", "[unit][config]") {
    const config cfg = load_config_string("", "empty.toml");
    CHECK(cfg.path == "empty.toml");
    CHECK(cfg.proxy.listen.host == "127.0.0.1");
    CHECK(cfg.proxy.listen.port == 8990);
    CHECK_FALSE(cfg.proxy.allow_remote);
    CHECK(cfg.proxy.unmatched == unmatched_policy::forward);
    CHECK(cfg.proxy.tunnel);
    CHECK(cfg.proxy.header_timeout == 10s);
    CHECK(cfg.proxy.idle_timeout == 75s);
    CHECK(cfg.proxy.max_header_bytes == 65536);
    CHECK(cfg.proxy.max_connections == 4096);
    CHECK(cfg.proxy.threads == 1);
    CHECK(cfg.proxy.shutdown_grace == 10s);
    CHECK(cfg.admin.listen.to_string() == "127.0.0.1:8991");
    CHECK(cfg.log.level == "info");
    CHECK(cfg.log.format == "text");
    CHECK(cfg.log.access);
    CHECK(cfg.identity.source == identity_source_kind::auto_detect);
    CHECK(cfg.identity.selector.empty());
    CHECK(cfg.identity.endpoint.empty());
    CHECK(cfg.upstream.ca_file.empty());
    CHECK(cfg.upstream.connect_timeout == 5s);
    CHECK(cfg.upstream.response_timeout == 60s);
    CHECK(cfg.routes.empty());
}

TEST_CASE("every key is parsed", "[unit][config]") {
    const config cfg = load_config_string(R"(
[proxy]
listen = "0.0.0.0:18990"
allow_remote = true
unmatched = "deny"
tunnel = false
header_timeout = "2s"
idle_timeout = "1m"
max_header_bytes = 8192
max_connections = 10
threads = 4
shutdown_grace = "0s"

[admin]
listen = "[::1]:0"

[log]
level = "debug"
format = "json"
access = false

[identity]
source = "workload-identity"
object_id = "oid-1"
endpoint = "http://127.0.0.1:40342/metadata/identity/oauth2/token"

[upstream]
ca_file = "/etc/ssl/extra.pem"
connect_timeout = "250ms"
response_timeout = "1.5s"

[[route]]
name = "kv"
host = "*.Vault.Azure.NET"
path_prefix = "/kv/"
strip_prefix = true
upstream = "http://[2001:DB8::1]:8080/base/"
scope = "https://vault.azure.net/.default"
resource_id = "/subscriptions/s/rg/r"
header = "X-Token"
value = "Token {token}"
client_authorization = "keep"
allow_http_upstream = true
)");
    CHECK(cfg.proxy.listen.host == "0.0.0.0");
    CHECK(cfg.proxy.listen.port == 18990);
    CHECK(cfg.proxy.allow_remote);
    CHECK(cfg.proxy.unmatched == unmatched_policy::deny);
    CHECK_FALSE(cfg.proxy.tunnel);
    CHECK(cfg.proxy.header_timeout == 2s);
    CHECK(cfg.proxy.idle_timeout == 60s);
    CHECK(cfg.proxy.max_header_bytes == 8192);
    CHECK(cfg.proxy.max_connections == 10);
    CHECK(cfg.proxy.threads == 4);
    CHECK(cfg.proxy.shutdown_grace == 0ms);
    CHECK(cfg.admin.listen.host == "::1");
    CHECK(cfg.admin.listen.port == 0);
    CHECK(cfg.admin.listen.to_string() == "[::1]:0");
    CHECK(cfg.log.level == "debug");
    CHECK(cfg.log.format == "json");
    CHECK_FALSE(cfg.log.access);
    CHECK(cfg.identity.source == identity_source_kind::workload_identity);
    CHECK(cfg.identity.selector.object_id == "oid-1");
    CHECK(cfg.identity.selector.describe() == "object_id=oid-1");
    CHECK(cfg.identity.endpoint == "http://127.0.0.1:40342/metadata/identity/oauth2/token");
    CHECK(cfg.upstream.ca_file == "/etc/ssl/extra.pem");
    CHECK(cfg.upstream.connect_timeout == 250ms);
    CHECK(cfg.upstream.response_timeout == 1500ms);

    REQUIRE(cfg.routes.size() == 1);
    const route& r = cfg.routes[0];
    CHECK(r.name == "kv");
    CHECK(r.host == "*.vault.azure.net");
    CHECK(r.path_prefix == "/kv/");
    CHECK(r.strip_prefix);
    CHECK_FALSE(r.upstream.tls);
    CHECK(r.upstream.host == "2001:db8::1");
    CHECK(r.upstream.port == 8080);
    CHECK(r.upstream.base_path == "/base");
    CHECK(r.upstream.authority == "[2001:db8::1]:8080");
    CHECK(r.upstream.url == "http://[2001:DB8::1]:8080/base/");
    CHECK(r.scope == "https://vault.azure.net/.default");
    CHECK(r.resource == "https://vault.azure.net");
    CHECK(r.identity.resource_id == "/subscriptions/s/rg/r");
    CHECK(r.identity.describe() == "resource_id=/subscriptions/s/rg/r");
    CHECK(r.header == "X-Token");
    CHECK(r.value == "Token {token}");
    CHECK(r.client_authorization == client_auth_policy::keep);
    CHECK(r.allow_http_upstream);
    CHECK(r.pos.line == 32);
}

TEST_CASE("dotted keys and inline tables are ordinary TOML", "[unit][config]") {
    const config cfg = load_config_string(
        "proxy.listen = \"127.0.0.1:1\"\nlog = { level = \"warn\", access = false }\n");
    CHECK(cfg.proxy.listen.port == 1);
    CHECK(cfg.log.level == "warn");
    CHECK_FALSE(cfg.log.access);
}

TEST_CASE("identity sources and selectors", "[unit][config]") {
    const std::pair<const char*, identity_source_kind> sources[] = {
        {"auto", identity_source_kind::auto_detect},
        {"imds", identity_source_kind::imds},
        {"app-service", identity_source_kind::app_service},
        {"azure-arc", identity_source_kind::azure_arc},
        {"workload-identity", identity_source_kind::workload_identity},
        {"azure-cli", identity_source_kind::azure_cli},
    };
    for (const auto& [text, kind] : sources) {
        const config cfg =
            load_config_string(std::string("[identity]\nsource = \"") + text + "\"\n");
        CHECK(cfg.identity.source == kind);
    }
    CHECK(identity_selector{}.describe() == "system");
    CHECK(identity_selector{"c", "", ""}.describe() == "client_id=c");
    // Empty strings are the documented default and do not count as set.
    const config cfg = load_config_string(
        "[identity]\nclient_id = \"c1\"\nobject_id = \"\"\nresource_id = \"\"\n");
    CHECK(cfg.identity.selector.client_id == "c1");
}

TEST_CASE("route defaults and upstream forms", "[unit][config]") {
    const config cfg = load_config_string(graph_route + graph_route +
                                          "[[route]]\n"
                                          "name = \"svc\"\n"
                                          "host = \"api.contoso.com\"\n"
                                          "upstream = \"https://API.contoso.com:8443/\"\n"
                                          "resource = \"api://svc/\"\n"
                                          "[[route]]\n"
                                          "upstream = \"http://10.0.0.4:80/v1//\"\n"
                                          "resource = \"x\"\n"
                                          "allow_http_upstream = true\n");
    REQUIRE(cfg.routes.size() == 4);
    const route& r1 = cfg.routes[0];
    CHECK(r1.name == "route-1");
    CHECK(r1.host.empty());
    CHECK(r1.path_prefix == "/");
    CHECK_FALSE(r1.strip_prefix);
    CHECK(r1.upstream.tls);
    CHECK(r1.upstream.host == "graph.microsoft.com");
    CHECK(r1.upstream.port == 443);
    CHECK(r1.upstream.base_path.empty());
    CHECK(r1.upstream.authority == "graph.microsoft.com");
    CHECK(r1.resource == "https://graph.microsoft.com");
    CHECK(r1.scope.empty());
    CHECK(r1.identity.empty());
    CHECK(r1.header == "Authorization");
    CHECK(r1.value == "Bearer {token}");
    CHECK(r1.client_authorization == client_auth_policy::replace);
    CHECK_FALSE(r1.allow_http_upstream);
    CHECK(r1.pos.line == 1);
    CHECK(cfg.routes[1].name == "route-2");
    CHECK(cfg.routes[1].pos.line == 4);

    const route& r3 = cfg.routes[2];
    CHECK(r3.host == "api.contoso.com");
    CHECK(r3.upstream.host == "api.contoso.com");
    CHECK(r3.upstream.port == 8443);
    CHECK(r3.upstream.base_path.empty());
    CHECK(r3.upstream.authority == "api.contoso.com:8443");
    CHECK(r3.resource == "api://svc/");  // byte-exact, trailing slash kept

    const route& r4 = cfg.routes[3];
    CHECK_FALSE(r4.upstream.tls);
    CHECK(r4.upstream.port == 80);
    CHECK(r4.upstream.authority == "10.0.0.4");  // explicit default port is not repeated
    CHECK(r4.upstream.base_path == "/v1");
}

TEST_CASE("parse errors carry line and column", "[unit][config]") {
    const config_error e = single_error("[proxy]\nlisten = \"127.0.0.1:1\"\ntunnel = \n");
    CHECK(e.file == "test.toml");
    CHECK(e.pos.line == 3);
    CHECK(e.pos.column > 0);
    CHECK(e.key.empty());
    CHECK(contains(e.format(), "test.toml:3:"));
}

TEST_CASE("unknown keys and sections are errors", "[unit][config]") {
    SECTION("key in a section, with a suggestion") {
        const config_error e = single_error("[proxy]\n  listne = \"127.0.0.1:1\"\n");
        CHECK(e.pos.line == 2);
        CHECK(e.pos.column == 3);
        CHECK(e.key == "proxy.listne");
        CHECK(contains(e.message, "unknown key 'listne' in [proxy]"));
        CHECK(contains(e.message, "did you mean 'listen'"));
        CHECK(e.format() == "test.toml:2:3: proxy.listne: " + e.message);
    }
    SECTION("section") {
        const config_error e = single_error("\n[proxi]\nlisten = \"x\"\n");
        CHECK(e.pos.line == 2);
        CHECK(e.key == "proxi");
        CHECK(contains(e.message, "unknown section [proxi]"));
        CHECK(contains(e.message, "did you mean 'proxy'"));
    }
    SECTION("no suggestion for a word that is not a typo") {
        const config_error e = single_error("[foo]\n");
        CHECK(e.message == "unknown section [foo]");
        const config_error k = single_error("[proxy]\nbanana = 1\n");
        CHECK(k.message == "unknown key 'banana' in [proxy]");
    }
    SECTION("array of tables where a table is expected") {
        const config_error e = single_error("[[proxy]]\nlisten = \"127.0.0.1:1\"\n");
        CHECK(e.key == "proxy");
        CHECK(contains(e.message, "expected a table [proxy], got an array"));
    }
    SECTION("top-level key") {
        const config_error e = single_error("listen = \"127.0.0.1:1\"\n");
        CHECK(e.pos.line == 1);
        CHECK(e.pos.column == 1);
        CHECK(e.key == "listen");
    }
    SECTION("nested table inside a section") {
        const config_error e = single_error("[log.extra]\nx = 1\n");
        CHECK(e.key == "log.extra");
        CHECK(contains(e.message, "unknown key 'extra' in [log]"));
    }
    SECTION("route key, naming the route") {
        const config_error e = single_error(graph_route + "name = \"graph\"\nhots = \"a.b\"\n");
        CHECK(e.pos.line == 5);
        CHECK(e.key == "route[1] \"graph\".hots");
        CHECK(contains(e.message, "in [[route]]"));
        CHECK(contains(e.message, "did you mean 'host'"));
    }
    SECTION("route written as a table") {
        const config_error e = single_error("[route]\nupstream = \"https://a\"\n");
        CHECK(e.key == "route");
        CHECK(e.pos.line == 1);
        CHECK(contains(e.message, "[[route]]"));
    }
    SECTION("section given as a value") {
        const config_error e = single_error("proxy = 3\n");
        CHECK(e.key == "proxy");
        CHECK(contains(e.message, "expected a table"));
    }
}

TEST_CASE("wrong types are errors", "[unit][config]") {
    SECTION("integer where a string is expected") {
        const config_error e = single_error("[log]\nlevel = 3\n");
        CHECK(e.pos.line == 2);
        CHECK(e.pos.column == 9);
        CHECK(e.key == "log.level");
        CHECK(e.message == "expected a string, got an integer");
    }
    SECTION("string where a boolean is expected") {
        const config_error e = single_error("[proxy]\ntunnel = \"yes\"\n");
        CHECK(e.key == "proxy.tunnel");
        CHECK(contains(e.message, "expected a boolean"));
    }
    SECTION("float where an integer is expected") {
        const config_error e = single_error("[proxy]\nmax_connections = 1.5\n");
        CHECK(e.key == "proxy.max_connections");
        CHECK(e.pos.column == 19);
        CHECK(contains(e.message, "got a float"));
    }
    SECTION("duration as a bare number") {
        const config_error e = single_error("[proxy]\nheader_timeout = 10\n");
        CHECK(e.key == "proxy.header_timeout");
        CHECK(e.pos.line == 2);
        CHECK(e.pos.column == 18);
        CHECK(contains(e.message, "expected a duration string with a unit"));
    }
    SECTION("route member") {
        const config_error e = single_error(graph_route + "strip_prefix = 1\n");
        CHECK(e.key == "route[1].strip_prefix");
        CHECK(e.pos.line == 4);
    }
}

TEST_CASE("bad values name their key and position", "[unit][config]") {
    const auto check = [](const std::string& text, int line, const std::string& key,
                          const std::string& needle) {
        INFO(text);
        const config_error e = single_error(text);
        CHECK(e.pos.line == line);
        CHECK(e.key == key);
        CHECK(contains(e.message, needle));
    };
    check("[proxy]\nunmatched = \"drop\"\n", 2, "proxy.unmatched", "\"forward\", \"deny\"");
    check("[proxy]\nheader_timeout = \"10\"\n", 2, "proxy.header_timeout", "with a unit");
    check("[proxy]\nheader_timeout = \"-1s\"\n", 2, "proxy.header_timeout", "with a unit");
    check("[proxy]\nheader_timeout = \"1.5ms\"\n", 2, "proxy.header_timeout", "millisecond");
    check("[proxy]\nidle_timeout = \"0s\"\n", 2, "proxy.idle_timeout", "greater than zero");
    check("[proxy]\nmax_header_bytes = 100\n", 2, "proxy.max_header_bytes", "1024 to 1048576");
    check("[proxy]\nmax_header_bytes = 2000000\n", 2, "proxy.max_header_bytes", "1024");
    check("[proxy]\nmax_connections = 0\n", 2, "proxy.max_connections", "must be from 1");
    check("[proxy]\nthreads = 65\n", 2, "proxy.threads", "1 to 64");
    check("[proxy]\nthreads = 0\n", 2, "proxy.threads", "1 to 64");
    check("[log]\nlevel = \"verbose\"\n", 2, "log.level", "\"trace\", \"debug\"");
    check("[log]\nformat = \"xml\"\n", 2, "log.format", "\"text\", \"json\"");
    check("[identity]\nsource = \"msi\"\n", 2, "identity.source", "\"app-service\"");
    check("[identity]\nendpoint = \"localhost:1234\"\n", 2, "identity.endpoint", "http");
    check("[identity]\nendpoint = \"ftp://x/y\"\n", 2, "identity.endpoint", "http");
    check("[upstream]\nconnect_timeout = \"0ms\"\n", 2, "upstream.connect_timeout", "zero");
    check("[upstream]\nresponse_timeout = \"5 s\"\n", 2, "upstream.response_timeout", "unit");
    check("[upstream]\nca_file = 1\n", 2, "upstream.ca_file", "expected a string");
}

TEST_CASE("listen addresses", "[unit][config]") {
    SECTION("accepted forms") {
        CHECK(load_config_string("[proxy]\nlisten = \"localhost:0\"\n").proxy.listen.host ==
              "localhost");
        CHECK(load_config_string("[proxy]\nlisten = \"127.0.0.2:65535\"\n").proxy.listen.port ==
              65535);
        CHECK(load_config_string("[proxy]\nlisten = \"[::1]:8990\"\n").proxy.listen.host == "::1");
        CHECK(load_config_string("[admin]\nlisten = \"\"\n").admin.listen.empty());
        CHECK(load_config_string("[proxy]\nallow_remote = true\nlisten = \"[::]:1\"\n")
                  .proxy.listen.to_string() == "[::]:1");
        CHECK(load_config_string("[proxy]\nallow_remote = true\nlisten = \"proxy.internal:1\"\n")
                  .proxy.listen.host == "proxy.internal");
    }
    SECTION("malformed") {
        const auto message_of = [](const std::string& listen) {
            const config_error e = single_error("[proxy]\nlisten = \"" + listen + "\"\n");
            CHECK(e.key == "proxy.listen");
            CHECK(e.pos.line == 2);
            CHECK(e.pos.column == 10);
            return e.message;
        };
        CHECK(contains(message_of("127.0.0.1"), "missing port"));
        CHECK(contains(message_of("127.0.0.1:65536"), "0 to 65535"));
        CHECK(contains(message_of("127.0.0.1:http"), "0 to 65535"));
        CHECK(contains(message_of("::1:8990"), "in brackets"));
        CHECK(contains(message_of("[::1]"), "missing port"));
        CHECK(contains(message_of("[127.0.0.1]:80"), "not an IPv6 address"));
        CHECK(contains(message_of(":8990"), "missing host"));
        CHECK(contains(message_of(""), "must not be empty"));
        CHECK(contains(message_of("bad host:1"), "neither an IP address nor a host name"));
    }
    SECTION("non-loopback needs allow_remote") {
        const config_error e = single_error("[proxy]\nlisten = \"0.0.0.0:8990\"\n");
        CHECK(e.key == "proxy.listen");
        CHECK(e.pos.line == 2);
        CHECK(e.pos.column == 10);
        CHECK(contains(e.message, "allow_remote = true"));
        CHECK(contains(single_error("[proxy]\nlisten = \"10.1.2.3:1\"\n").message, "loopback"));
        CHECK(contains(single_error("[proxy]\nlisten = \"myhost:1\"\n").message, "loopback"));
        CHECK(contains(single_error("[proxy]\nlisten = \"[::]:1\"\n").message, "loopback"));
        const config_error admin = single_error("[admin]\nlisten = \"192.168.1.1:8991\"\n");
        CHECK(admin.key == "admin.listen");
        CHECK(admin.pos.line == 2);
        // IPv4-mapped loopback is loopback.
        CHECK_NOTHROW(load_config_string("[proxy]\nlisten = \"[::ffff:127.0.0.1]:1\"\n"));
    }
}

TEST_CASE("identity selector conflicts name the keys", "[unit][config]") {
    const config_error e = single_error("[identity]\nclient_id = \"a\"\nresource_id = \"b\"\n");
    CHECK(e.key == "identity");
    CHECK(e.pos.line == 3);
    CHECK(contains(e.message, "client_id and resource_id"));

    const config_error r = single_error(graph_route + "name = \"g\"\nclient_id = \"a\"\n" +
                                        "object_id = \"b\"\nresource_id = \"c\"\n");
    CHECK(r.key == "route[1] \"g\"");
    CHECK(r.pos.line == 7);
    CHECK(contains(r.message, "client_id, object_id and resource_id"));
}

TEST_CASE("route audience: resource or scope", "[unit][config]") {
    SECTION("neither") {
        const config_error e =
            single_error("\n[[route]]\nupstream = \"https://graph.microsoft.com\"\n");
        CHECK(e.pos.line == 2);
        CHECK(e.key == "route[1].resource");
        CHECK(contains(e.message, "one of resource or scope is required"));
    }
    SECTION("both") {
        const config_error e =
            single_error(graph_route + "scope = \"https://graph.microsoft.com/.default\"\n");
        CHECK(e.pos.line == 4);
        CHECK(e.pos.column == 9);
        CHECK(e.key == "route[1].scope");
        CHECK(contains(e.message, "not both"));
    }
    SECTION("scope without /.default") {
        const config_error e = single_error(
            "[[route]]\nupstream = \"https://a.b\"\nscope = \"https://a.b/user.read\"\n");
        CHECK(e.pos.line == 3);
        CHECK(e.key == "route[1].scope");
        CHECK(contains(e.message, "/.default"));
        CHECK(contains(single_error("[[route]]\nupstream = \"https://a.b\"\nscope = "
                                    "\"/.default\"\n")
                           .message,
                       "/.default"));
    }
    SECTION("empty resource") {
        const config_error e =
            single_error("[[route]]\nupstream = \"https://a.b\"\nresource = \"\"\n");
        CHECK(e.key == "route[1].resource");
        CHECK(contains(e.message, "must not be empty"));
    }
    SECTION("a value of the wrong type is reported once") {
        const config_error e =
            single_error("[[route]]\nupstream = \"https://a.b\"\nresource = 3\n");
        CHECK(e.key == "route[1].resource");
        CHECK(e.message == "expected a string, got an integer");
        const config_error s =
            single_error("[[route]]\nupstream = \"https://a.b\"\nscope = true\n");
        CHECK(s.key == "route[1].scope");
        CHECK(s.message == "expected a string, got a boolean");
        const config_error u = single_error("[[route]]\nupstream = 443\nresource = \"r\"\n");
        CHECK(u.key == "route[1].upstream");
        CHECK(u.pos.line == 2);
    }
    SECTION("scope keeps the rest byte-exact") {
        const config cfg = load_config_string(
            "[[route]]\nupstream = \"https://a.b\"\nscope = \"api://Svc/x//.default\"\n");
        CHECK(cfg.routes[0].resource == "api://Svc/x/");
        CHECK(cfg.routes[0].scope == "api://Svc/x//.default");
    }
}

TEST_CASE("route upstream checks", "[unit][config]") {
    const auto upstream_error = [](const std::string& url) {
        const config_error e =
            single_error("[[route]]\nresource = \"r\"\nupstream = \"" + url + "\"\n");
        CHECK(e.key == "route[1].upstream");
        CHECK(e.pos.line == 3);
        CHECK(e.pos.column == 12);
        return e.message;
    };
    CHECK(contains(upstream_error("graph.microsoft.com"), "absolute URL"));
    CHECK(contains(upstream_error("ftp://a.b"), "http or https"));
    CHECK(contains(upstream_error("https://user:pw@a.b"), "user info"));
    CHECK(contains(upstream_error("https://a.b/?x=1"), "query"));
    CHECK(contains(upstream_error("https://a.b/#frag"), "fragment"));
    CHECK(contains(upstream_error("https:///path"), "no host"));
    CHECK(contains(upstream_error("https://a.b:99999"), "1 to 65535"));
    CHECK(contains(upstream_error("https://a.b:0"), "port 0"));
    CHECK(contains(upstream_error("http://a.b"), "cleartext http://"));
    CHECK(upstream_error("http://a.b") ==
          "a token would be sent over cleartext http://; set allow_http_upstream = true if you "
          "mean it");

    SECTION("missing upstream") {
        const config_error e = single_error("\n\n[[route]]\nname = \"x\"\nresource = \"r\"\n");
        CHECK(e.pos.line == 3);
        CHECK(e.key == "route[1] \"x\".upstream");
        CHECK(contains(e.message, "is required"));
    }
}

TEST_CASE("route host, prefix, header and value checks", "[unit][config]") {
    const auto route_error = [](const std::string& line, const std::string& key) {
        const config_error e = single_error(graph_route + line + "\n");
        CHECK(e.key == "route[1]." + key);
        CHECK(e.pos.line == 4);
        return e.message;
    };
    CHECK(contains(route_error("host = \"https://a.b\"", "host"), "scheme"));
    CHECK(contains(route_error("host = \"a.b:443\"", "host"), "port"));
    CHECK(contains(route_error("host = \"a.b/x\"", "host"), "path"));
    CHECK(contains(route_error("host = \"a.*.b\"", "host"), "wildcard"));
    CHECK(contains(route_error("host = \"*b.c\"", "host"), "wildcard"));
    CHECK(contains(route_error("host = \"a..b\"", "host"), "not a valid host name"));
    CHECK(contains(route_error("path_prefix = \"api\"", "path_prefix"), "start with \"/\""));
    CHECK(contains(route_error("path_prefix = \"/a?b\"", "path_prefix"), "query"));
    CHECK(contains(route_error("header = \"Bad Header\"", "header"), "not a valid HTTP"));
    CHECK(contains(route_error("header = \"connection\"", "header"), "managed by the proxy"));
    CHECK(contains(route_error("header = \"Host\"", "header"), "managed by the proxy"));
    CHECK(contains(route_error("header = \"Content-Length\"", "header"), "managed"));
    CHECK(contains(route_error("header = \"Transfer-Encoding\"", "header"), "managed"));
    CHECK(contains(route_error("header = \"Proxy-Authorization\"", "header"), "managed"));
    CHECK(contains(route_error("value = \"Bearer\"", "value"), "{token}"));
    CHECK(contains(route_error("value = \"Bearer {token}\\r\\nX: y\"", "value"), "control"));
    CHECK(contains(route_error("client_authorization = \"drop\"", "client_authorization"),
                   "\"replace\", \"keep\""));
    CHECK(contains(route_error("name = \"\"", "name"), "must not be empty"));
    CHECK(contains(route_error("name = \"a\\nb\"", "name"), "control characters"));

    const config cfg = load_config_string(graph_route + "host = \"\"\n");
    CHECK(cfg.routes[0].host.empty());
}

TEST_CASE("route names are unique", "[unit][config]") {
    const std::string text =
        "[[route]]\nname = \"graph\"\nupstream = \"https://a.b\"\n"
        "resource = \"r\"\n"
        "[[route]]\nname = \"graph\"\nupstream = \"https://a.b\"\n"
        "resource = \"r\"\n";
    const config_error e = single_error(text);
    CHECK(e.pos.line == 6);
    CHECK(e.key == "route[2] \"graph\".name");
    CHECK(contains(e.message, "duplicate route name \"graph\""));
    CHECK(contains(e.message, "route[1] at line 2"));

    // An explicit name may not take a default one either.
    const config_error d =
        single_error(graph_route +
                     "[[route]]\nname = \"route-1\"\nupstream = \"https://a.b\"\n"
                     "resource = \"r\"\n");
    CHECK(d.key == "route[2] \"route-1\".name");
}

TEST_CASE("all problems are reported at once, in file order", "[unit][config]") {
    const std::string text = R"([proxy]
listen = "0.0.0.0:1"
tunnel = "no"
[log]
level = "loud"
[bogus]
[[route]]
upstream = "http://a.b"
[[route]]
name = "two"
upstream = "https://a.b"
resource = "r"
scope = "r/.default"
)";
    try {
        load_config_string(text, "multi.toml");
        FAIL("expected errors");
    } catch (const config_exception& e) {
        const auto& errors = e.errors();
        REQUIRE(errors.size() == 7);
        CHECK(errors[0].key == "proxy.listen");
        CHECK(errors[1].key == "proxy.tunnel");
        CHECK(errors[2].key == "log.level");
        CHECK(errors[3].key == "bogus");
        CHECK(errors[4].key == "route[1].resource");  // at the [[route]] header, line 7
        CHECK(errors[5].key == "route[1].upstream");
        CHECK(errors[6].key == "route[2] \"two\".scope");
        for (std::size_t i = 1; i < errors.size(); ++i) {
            CHECK(errors[i - 1].pos.line <= errors[i].pos.line);
        }
        const std::string what = e.what();
        CHECK(what.find("multi.toml:2:10: proxy.listen: ") == 0);
        CHECK(std::count(what.begin(), what.end(), '\n') == 6);
        CHECK(contains(what, "multi.toml:13:9: route[2] \"two\".scope: "));
    }
}

TEST_CASE("config_error formatting", "[unit][config]") {
    CHECK(config_error{"f.toml", {3, 7}, "proxy.listen", "bad"}.format() ==
          "f.toml:3:7: proxy.listen: bad");
    CHECK(config_error{"f.toml", {3, 0}, "k", "bad"}.format() == "f.toml:3: k: bad");
    CHECK(config_error{"f.toml", {}, "k", "bad"}.format() == "f.toml: k: bad");
    CHECK(config_error{"f.toml", {}, "", "bad"}.format() == "f.toml: bad");
    const config_exception e({{"a", {1, 2}, "k", "m1"}, {"a", {}, "", "m2"}});
    CHECK(std::string(e.what()) == "a:1:2: k: m1\na: m2");
    CHECK(e.errors().size() == 2);
}

TEST_CASE("durations", "[unit][config]") {
    duration d{};
    CHECK(parse_duration("250ms", d));
    CHECK(d == 250ms);
    CHECK(parse_duration("10s", d));
    CHECK(d == 10s);
    CHECK(parse_duration("5m", d));
    CHECK(d == 5min);
    CHECK(parse_duration("1h", d));
    CHECK(d == 1h);
    CHECK(parse_duration("1.5s", d));
    CHECK(d == 1500ms);
    CHECK(parse_duration("0.1s", d));
    CHECK(d == 100ms);
    CHECK(parse_duration("0.25h", d));
    CHECK(d == 15min);
    CHECK(parse_duration("0s", d));
    CHECK(d == 0ms);
    CHECK(parse_duration("007s", d));
    CHECK(d == 7s);

    d = 42ms;
    for (const char* bad :
         {"", "10", "-1s", "+1s", "1.s", ".5s", "1.5", "s", "10 s", " 10s", "10S", "10sec", "1d",
          "1.5ms", "1e3ms", "99999999999999999999s", "1..5s", "1.2.3s"}) {
        INFO(bad);
        CHECK_FALSE(parse_duration(bad, d));
    }
    CHECK(d == 42ms);  // untouched on failure
}

TEST_CASE("files: reading and errors", "[unit][config]") {
    const auto dir = std::filesystem::temp_directory_path();
    const auto good = dir / "msiproxy_config_test_good.toml";
    {
        std::ofstream out(good);
        out << "[log]\nlevel = \"warn\"\n";
    }
    const config cfg = load_config_file(good.string());
    CHECK(cfg.log.level == "warn");
    CHECK(cfg.path == good.string());

    const auto bad = dir / "msiproxy_config_test_bad.toml";
    {
        std::ofstream out(bad);
        out << "[log]\nlevel = 1\n";
    }
    try {
        load_config_file(bad.string());
        FAIL("expected an error");
    } catch (const config_exception& e) {
        CHECK(std::string(e.what()) ==
              bad.string() + ":2:9: log.level: expected a string, got an integer");
    }
    std::filesystem::remove(good);
    std::filesystem::remove(bad);

    const auto missing = (dir / "msiproxy_config_test_missing.toml").string();
    try {
        load_config_file(missing);
        FAIL("expected an error");
    } catch (const config_exception& e) {
        REQUIRE(e.errors().size() == 1);
        CHECK(e.errors()[0].file == missing);
        CHECK(contains(e.what(), "cannot read"));
        CHECK(contains(e.what(), "No such file"));
    }
    CHECK_THROWS_AS(load_config_file(dir.string()), config_exception);
}

TEST_CASE("describe_routes", "[unit][config]") {
    const config none = load_config_string("");
    CHECK(contains(describe_routes(none), "no routes"));
    CHECK(
        contains(describe_routes(load_config_string("[proxy]\nunmatched = \"deny\"\n")), "denied"));

    const config cfg = load_config_string(R"(
[identity]
client_id = "c1"
[[route]]
name = "graph"
host = "graph.microsoft.com"
upstream = "https://graph.microsoft.com"
resource = "https://graph.microsoft.com"
[[route]]
name = "kv"
path_prefix = "/kv/"
strip_prefix = true
upstream = "https://v.vault.azure.net"
resource = "https://vault.azure.net"
object_id = "o1"
)");
    const std::string table = describe_routes(cfg);
    INFO(table);
    CHECK(std::count(table.begin(), table.end(), '\n') == 2);
    CHECK(contains(table, "graph  host=graph.microsoft.com  prefix=/"));
    CHECK(contains(table, "-> https://graph.microsoft.com"));
    CHECK(contains(table, "resource=https://graph.microsoft.com"));
    CHECK(contains(table, "identity=client_id=c1"));  // inherits [identity]
    CHECK(contains(table, "host=(any)"));
    CHECK(contains(table, "prefix=/kv/ (stripped)"));
    CHECK(contains(table, "identity=object_id=o1"));
    // Aligned: the "->" column starts at the same offset on both lines.
    const auto second = table.find('\n') + 1;
    CHECK(table.find("->") == table.find("->", second) - second);
}

TEST_CASE("every shipped config file loads", "[unit][config]") {
    const std::filesystem::path root = std::filesystem::path(MSIPROXY_SOURCE_DIR) / "config";
    REQUIRE(std::filesystem::is_directory(root));
    int loaded = 0;
    for (const auto& entry : std::filesystem::recursive_directory_iterator(root)) {
        if (!entry.is_regular_file() || entry.path().extension() != ".toml") continue;
        INFO(entry.path().string());
        try {
            const config cfg = load_config_file(entry.path().string());
            CHECK_FALSE(cfg.routes.empty());
            ++loaded;
        } catch (const config_exception& e) {
            FAIL(e.what());
        }
    }
    CHECK(loaded >= 3);

    const config shipped = load_config_file((root / "msiproxy.toml").string());
    REQUIRE(shipped.routes.size() == 1);
    CHECK(shipped.routes[0].name == "graph");
    CHECK(shipped.routes[0].host == "graph.microsoft.com");
    CHECK(shipped.routes[0].upstream.url == "https://graph.microsoft.com");
    CHECK(shipped.routes[0].resource == "https://graph.microsoft.com");
    // The shipped file only documents defaults: apart from its route it equals an empty one.
    const config empty = load_config_string("");
    CHECK(shipped.proxy.listen.to_string() == empty.proxy.listen.to_string());
    CHECK(shipped.proxy.header_timeout == empty.proxy.header_timeout);
    CHECK(shipped.admin.listen.to_string() == empty.admin.listen.to_string());
    CHECK(shipped.log.level == empty.log.level);
}

TEST_CASE("the shipped file's commented keys are valid when uncommented", "[unit][config]") {
    // Uncommenting every "#key = value" line of [proxy] ... [upstream] must give a valid config
    // with the same values: the documented defaults are the real ones.
    std::ifstream in(std::filesystem::path(MSIPROXY_SOURCE_DIR) / "config" / "msiproxy.toml");
    std::string text;
    std::string line;
    bool in_routes = false;
    while (std::getline(in, line)) {
        if (line.rfind("[[route]]", 0) == 0) in_routes = true;
        if (!in_routes && line.size() > 1 && line[0] == '#' && line[1] != ' ' &&
            line.find(" = ") != std::string::npos) {
            line.erase(0, 1);
        }
        text += line + "\n";
    }
    const config cfg = load_config_string(text, "uncommented.toml");
    const config empty = load_config_string("");
    CHECK(cfg.proxy.listen.to_string() == empty.proxy.listen.to_string());
    CHECK(cfg.proxy.idle_timeout == empty.proxy.idle_timeout);
    CHECK(cfg.proxy.max_header_bytes == empty.proxy.max_header_bytes);
    CHECK(cfg.proxy.threads == empty.proxy.threads);
    CHECK(cfg.proxy.shutdown_grace == empty.proxy.shutdown_grace);
    CHECK(cfg.admin.listen.to_string() == empty.admin.listen.to_string());
    CHECK(cfg.log.format == empty.log.format);
    CHECK(cfg.identity.source == empty.identity.source);
    CHECK(cfg.upstream.response_timeout == empty.upstream.response_timeout);
}

}  // namespace msiproxy
