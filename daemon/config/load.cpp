// toml++ -> config structs: one reader per section, every key typed and converted, unknown keys
// and sections reported; all problems are collected and thrown together (config_exception).
#include <toml++/toml.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <initializer_list>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>

#include "config/config_detail.hpp"

namespace msiproxy {

namespace config_detail {

void diagnostics::add(source_pos pos, std::string key, std::string message) {
    errors_.push_back(config_error{file_, pos, std::move(key), std::move(message)});
}

void diagnostics::raise() {
    // Reading order is the natural one for a person fixing the file; unknown positions last.
    std::stable_sort(errors_.begin(), errors_.end(),
                     [](const config_error& a, const config_error& b) {
                         const auto rank = [](const source_pos& p) {
                             return std::pair(p.line == 0 ? 1 : 0, std::pair(p.line, p.column));
                         };
                         return rank(a.pos) < rank(b.pos);
                     });
    throw config_exception(std::move(errors_));
}

}  // namespace config_detail

namespace {

using namespace config_detail;

source_pos to_pos(const toml::source_position& p) {
    return source_pos{static_cast<int>(p.line), static_cast<int>(p.column)};
}

std::string_view type_name(const toml::node& node) {
    switch (node.type()) {
        case toml::node_type::table:
            return "a table";
        case toml::node_type::array:
            return "an array";
        case toml::node_type::string:
            return "a string";
        case toml::node_type::integer:
            return "an integer";
        case toml::node_type::floating_point:
            return "a float";
        case toml::node_type::boolean:
            return "a boolean";
        case toml::node_type::date:
            return "a date";
        case toml::node_type::time:
            return "a time";
        case toml::node_type::date_time:
            return "a date-time";
        default:
            return "nothing";
    }
}

// Edit distance counting a swap of neighbours as one edit (optimal string alignment), for
// "did you mean" on unknown keys: "listne" is one edit from "listen". Keys are short.
std::size_t edit_distance(std::string_view a, std::string_view b) {
    const std::size_t w = b.size() + 1;
    std::vector<std::size_t> d((a.size() + 1) * w);
    for (std::size_t i = 0; i <= a.size(); ++i)
        d[i * w] = i;
    for (std::size_t j = 0; j <= b.size(); ++j)
        d[j] = j;
    for (std::size_t i = 1; i <= a.size(); ++i) {
        for (std::size_t j = 1; j <= b.size(); ++j) {
            const std::size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
            std::size_t best = std::min(
                {d[(i - 1) * w + j] + 1, d[i * w + j - 1] + 1, d[(i - 1) * w + j - 1] + cost});
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
                best = std::min(best, d[(i - 2) * w + j - 2] + 1);
            }
            d[i * w + j] = best;
        }
    }
    return d[a.size() * w + b.size()];
}

// The section a key lives in, as named in messages and in the position record.
struct section {
    std::string display;                     // "proxy", `route[2] "graph"`
    std::string pos_key;                     // "proxy", "route.2"
    std::string label;                       // "[proxy]", "[[route]]"
    std::span<const std::string_view> keys;  // known keys, for suggestions
};

// One key = value being read.
struct field {
    const section& sec;
    std::string_view name;
    const toml::node& node;

    std::string key() const { return sec.display + "." + std::string(name); }
    source_pos pos() const { return to_pos(node.source().begin); }
};

constexpr std::string_view proxy_keys[]{"listen",       "allow_remote",     "unmatched",
                                        "tunnel",       "header_timeout",   "deny_private",
                                        "idle_timeout", "max_header_bytes", "max_connections",
                                        "threads",      "shutdown_grace"};
constexpr std::string_view admin_keys[]{"listen"};
constexpr std::string_view log_keys[]{"level", "format", "access"};
constexpr std::string_view identity_keys[]{"source",   "client_id", "object_id", "resource_id",
                                           "endpoint", "timeout",   "retry_max"};
constexpr std::string_view upstream_keys[]{"ca_file", "connect_timeout", "response_timeout"};
constexpr std::string_view route_keys[]{"name",
                                        "host",
                                        "path_prefix",
                                        "strip_prefix",
                                        "upstream",
                                        "resource",
                                        "scope",
                                        "client_id",
                                        "object_id",
                                        "resource_id",
                                        "header",
                                        "value",
                                        "client_authorization",
                                        "allow_http_upstream"};
constexpr std::string_view section_names[]{"proxy",    "admin",    "log",
                                           "identity", "upstream", "route"};

template <class E>
struct choice {
    std::string_view name;
    E value;
};

class loader {
  public:
    loader(diagnostics& diag, key_positions& where) : diag_(diag), where_(where) {}

    void load(const toml::table& root, config& cfg) {
        for (auto&& [k, v] : root) {
            const std::string_view name = k.str();
            const source_pos key_pos = to_pos(k.source().begin);
            if (name == "route") {
                load_routes(v, key_pos, cfg.routes);
                continue;
            }
            const auto* table = v.as_table();
            const bool known = std::ranges::find(section_names, name) != std::end(section_names);
            if (!known) {
                const std::string what = table
                                             ? "unknown section [" + std::string(name) + "]"
                                             : "unknown key '" + std::string(name) +
                                                   "' at the top level (keys belong in a section)";
                diag_.add(key_pos, std::string(name), what + suggestion(name, section_names));
                continue;
            }
            if (!table) {
                diag_.add(to_pos(v.source().begin), std::string(name),
                          "expected a table [" + std::string(name) + "], got " +
                              std::string(type_name(v)));
                continue;
            }
            if (name == "proxy") load_proxy(*table, cfg.proxy);
            if (name == "admin") load_admin(*table, cfg.admin);
            if (name == "log") load_log(*table, cfg.log);
            if (name == "identity") load_identity(*table, cfg.identity);
            if (name == "upstream") load_upstream(*table, cfg.upstream);
        }
    }

  private:
    void load_proxy(const toml::table& t, proxy_config& p) {
        const section sec{"proxy", "proxy", "[proxy]", proxy_keys};
        for (auto&& [k, v] : t) {
            const field f{sec, k.str(), v};
            if (!record(f, k)) continue;
            if (f.name == "listen") read_listen(f, p.listen, false);
            if (f.name == "allow_remote") read_bool(f, p.allow_remote);
            if (f.name == "deny_private") read_bool(f, p.deny_private);
            if (f.name == "unmatched") {
                read_choice<unmatched_policy>(
                    f, {{"forward", unmatched_policy::forward}, {"deny", unmatched_policy::deny}},
                    p.unmatched);
            }
            if (f.name == "tunnel") read_bool(f, p.tunnel);
            if (f.name == "header_timeout") read_duration(f, p.header_timeout, false);
            if (f.name == "idle_timeout") read_duration(f, p.idle_timeout, false);
            if (f.name == "max_header_bytes") read_integer(f, 1024, 1048576, p.max_header_bytes);
            if (f.name == "max_connections") read_integer(f, 1, 1 << 24, p.max_connections);
            if (f.name == "threads") read_integer(f, 1, 64, p.threads);
            // 0 is meaningful here: stop at once without waiting for in-flight requests.
            if (f.name == "shutdown_grace") read_duration(f, p.shutdown_grace, true);
        }
    }

    void load_admin(const toml::table& t, admin_config& a) {
        const section sec{"admin", "admin", "[admin]", admin_keys};
        for (auto&& [k, v] : t) {
            const field f{sec, k.str(), v};
            if (!record(f, k)) continue;
            if (f.name == "listen") read_listen(f, a.listen, true);
        }
    }

    void load_log(const toml::table& t, log_config& l) {
        const section sec{"log", "log", "[log]", log_keys};
        for (auto&& [k, v] : t) {
            const field f{sec, k.str(), v};
            if (!record(f, k)) continue;
            if (f.name == "level") {
                read_choice<std::string_view>(f,
                                              {{"trace", "trace"},
                                               {"debug", "debug"},
                                               {"info", "info"},
                                               {"warn", "warn"},
                                               {"error", "error"},
                                               {"off", "off"}},
                                              l.level);
            }
            if (f.name == "format") {
                read_choice<std::string_view>(f, {{"text", "text"}, {"json", "json"}}, l.format);
            }
            if (f.name == "access") read_bool(f, l.access);
        }
    }

    void load_identity(const toml::table& t, identity_config& id) {
        const section sec{"identity", "identity", "[identity]", identity_keys};
        for (auto&& [k, v] : t) {
            const field f{sec, k.str(), v};
            if (!record(f, k)) continue;
            if (f.name == "source") {
                read_choice<identity_source_kind>(
                    f,
                    {{"auto", identity_source_kind::auto_detect},
                     {"imds", identity_source_kind::imds},
                     {"app-service", identity_source_kind::app_service},
                     {"azure-arc", identity_source_kind::azure_arc},
                     {"workload-identity", identity_source_kind::workload_identity},
                     {"azure-cli", identity_source_kind::azure_cli}},
                    id.source);
            }
            if (f.name == "client_id") read_string(f, id.selector.client_id);
            if (f.name == "object_id") read_string(f, id.selector.object_id);
            if (f.name == "resource_id") read_string(f, id.selector.resource_id);
            if (f.name == "timeout") read_duration(f, id.timeout, false);
            if (f.name == "retry_max") read_duration(f, id.retry_max, false);
            if (f.name == "endpoint") {
                std::string text;
                if (read_string(f, text) && !text.empty()) {
                    if (auto url = check_endpoint_url(text)) {
                        id.endpoint = std::move(*url);
                    } else {
                        fail(f, url.error());
                    }
                }
            }
        }
    }

    void load_upstream(const toml::table& t, upstream_config& u) {
        const section sec{"upstream", "upstream", "[upstream]", upstream_keys};
        for (auto&& [k, v] : t) {
            const field f{sec, k.str(), v};
            if (!record(f, k)) continue;
            // Only the type is checked: the file is read when the TLS context is built, which
            // reports a missing or unreadable file itself (and `--check` stays side-effect free).
            if (f.name == "ca_file") read_string(f, u.ca_file);
            if (f.name == "connect_timeout") read_duration(f, u.connect_timeout, false);
            if (f.name == "response_timeout") read_duration(f, u.response_timeout, false);
        }
    }

    void load_routes(const toml::node& node, source_pos key_pos, std::vector<route>& routes) {
        const auto* array = node.as_array();
        if (!array || !array->is_array_of_tables()) {
            const std::string got =
                node.is_table() ? "a single [route] table" : std::string(type_name(node));
            diag_.add(key_pos, "route",
                      "routes are written as [[route]] tables (an array of tables), got " + got);
            return;
        }
        for (std::size_t i = 0; i < array->size(); ++i) {
            routes.push_back(load_route(*array->get(i)->as_table(), i + 1));
        }
    }

    route load_route(const toml::table& t, std::size_t index) {
        route r;
        r.pos = to_pos(t.source().begin);
        // The name comes first so that every message about this route can quote it.
        std::string name;
        if (const toml::node* n = t.get("name"); n && n->is_string()) name = n->as_string()->get();
        const section sec{route_display(index, name), "route." + std::to_string(index), "[[route]]",
                          route_keys};

        for (auto&& [k, v] : t) {
            const field f{sec, k.str(), v};
            if (!record(f, k)) continue;
            if (f.name == "name") {
                if (read_string(f, r.name)) {
                    // Names end up in log lines and metric labels: keep them printable.
                    const bool printable = std::ranges::none_of(r.name, [](char c) {
                        return static_cast<unsigned char>(c) < 0x20 || c == 0x7f;
                    });
                    if (r.name.empty() || !printable) {
                        fail(f, "must not be empty nor contain control characters");
                        r.name.clear();
                    }
                }
            }
            if (f.name == "host") {
                std::string text;
                if (read_string(f, text)) {
                    if (auto host = normalize_route_host(text)) {
                        r.host = std::move(*host);
                    } else {
                        fail(f, host.error());
                    }
                }
            }
            if (f.name == "path_prefix") read_path_prefix(f, r.path_prefix);
            if (f.name == "strip_prefix") read_bool(f, r.strip_prefix);
            if (f.name == "upstream") {
                std::string text;
                if (read_string(f, text)) {
                    if (auto target = parse_upstream_url(text)) {
                        r.upstream = std::move(*target);
                    } else {
                        fail(f, target.error());
                    }
                }
            }
            // resource/scope consistency is validate_config's: it needs both keys.
            if (f.name == "resource") read_string(f, r.resource);
            if (f.name == "scope") read_string(f, r.scope);
            if (f.name == "client_id") read_string(f, r.identity.client_id);
            if (f.name == "object_id") read_string(f, r.identity.object_id);
            if (f.name == "resource_id") read_string(f, r.identity.resource_id);
            if (f.name == "header") {
                std::string text;
                if (read_string(f, text)) {
                    if (auto header = check_token_header(text)) {
                        r.header = std::move(*header);
                    } else {
                        fail(f, header.error());
                    }
                }
            }
            if (f.name == "value") read_header_value(f, r.value);
            if (f.name == "client_authorization") {
                read_choice<client_auth_policy>(
                    f,
                    {{"replace", client_auth_policy::replace}, {"keep", client_auth_policy::keep}},
                    r.client_authorization);
            }
            if (f.name == "allow_http_upstream") read_bool(f, r.allow_http_upstream);
        }
        // validate_config names the route by what the file said, before defaulting it.
        return r;
    }

    // Records where a known key was written; reports an unknown one. False: skip the key.
    bool record(const field& f, const toml::key& k) {
        if (std::find(f.sec.keys.begin(), f.sec.keys.end(), f.name) == f.sec.keys.end()) {
            diag_.add(to_pos(k.source().begin), f.key(),
                      "unknown key '" + std::string(f.name) + "' in " + f.sec.label +
                          suggestion(f.name, f.sec.keys));
            return false;
        }
        where_.set(f.sec.pos_key + "." + std::string(f.name), f.pos());
        return true;
    }

    static std::string suggestion(std::string_view name, std::span<const std::string_view> known) {
        std::string_view best;
        // A third of the word may be wrong (at least one letter); beyond that it is a guess.
        std::size_t best_distance = std::max<std::size_t>(1, name.size() / 3) + 1;
        for (std::string_view candidate : known) {
            const std::size_t d = edit_distance(name, candidate);
            if (d < best_distance) {
                best = candidate;
                best_distance = d;
            }
        }
        return best.empty() ? std::string() : " (did you mean '" + std::string(best) + "'?)";
    }

    // Reports a bad value; the key is marked so that validate_config does not report it again.
    void fail(const field& f, std::string message) {
        diag_.add(f.pos(), f.key(), std::move(message));
        where_.set_invalid(f.sec.pos_key + "." + std::string(f.name));
    }

    void wrong_type(const field& f, std::string_view expected) {
        fail(f, "expected " + std::string(expected) + ", got " + std::string(type_name(f.node)));
    }

    bool read_string(const field& f, std::string& out) {
        const auto* s = f.node.as_string();
        if (!s) {
            wrong_type(f, "a string");
            return false;
        }
        out = s->get();
        return true;
    }

    void read_bool(const field& f, bool& out) {
        if (const auto* b = f.node.as_boolean()) {
            out = b->get();
        } else {
            wrong_type(f, "a boolean (true or false)");
        }
    }

    template <class T>
    void read_integer(const field& f, std::int64_t min, std::int64_t max, T& out) {
        const auto* i = f.node.as_integer();
        if (!i) {
            wrong_type(f, "an integer");
            return;
        }
        const std::int64_t v = i->get();
        if (v < min || v > max) {
            fail(f, "must be from " + std::to_string(min) + " to " + std::to_string(max) +
                        ", got " + std::to_string(v));
            return;
        }
        out = static_cast<T>(v);
    }

    void read_duration(const field& f, duration& out, bool allow_zero) {
        const auto* s = f.node.as_string();
        if (!s) {
            wrong_type(f, "a duration string with a unit (ms, s, m, h), e.g. \"10s\"");
            return;
        }
        duration d{};
        if (!parse_duration(s->get(), d)) {
            fail(f, "\"" + s->get() +
                        "\" is not a duration: write a number with a unit (ms, s, m, h), e.g. "
                        "\"10s\" or \"1.5s\", without sign and to the millisecond");
            return;
        }
        if (!allow_zero && d.count() == 0) {
            fail(f, "must be greater than zero");
            return;
        }
        out = d;
    }

    template <class E, class Out>
    void read_choice(const field& f, std::initializer_list<choice<E>> choices, Out& out) {
        std::string list;
        for (const auto& c : choices)
            list += (list.empty() ? "\"" : ", \"") + std::string(c.name) + "\"";
        std::string text;
        if (!read_string(f, text)) return;
        for (const auto& c : choices) {
            if (text == c.name) {
                out = Out(c.value);
                return;
            }
        }
        fail(f, "must be one of " + list + ", got \"" + text + "\"");
    }

    void read_listen(const field& f, listen_address& out, bool allow_empty) {
        std::string text;
        if (!read_string(f, text)) return;
        if (auto addr = parse_listen_address(text, allow_empty)) {
            out = std::move(*addr);
        } else {
            fail(f, addr.error());
        }
    }

    void read_path_prefix(const field& f, std::string& out) {
        std::string text;
        if (!read_string(f, text)) return;
        if (text.empty() || text.front() != '/') {
            fail(f, "must start with \"/\", e.g. \"/graph/\"");
            return;
        }
        for (char c : text) {
            if (c == '?' || c == '#' || static_cast<unsigned char>(c) <= 0x20 || c == 0x7f) {
                fail(f,
                     "must be a plain path without query, fragment, spaces or control "
                     "characters");
                return;
            }
        }
        out = std::move(text);
    }

    void read_header_value(const field& f, std::string& out) {
        std::string text;
        if (!read_string(f, text)) return;
        if (text.find("{token}") == std::string::npos) {
            fail(f, "must contain \"{token}\", e.g. \"Bearer {token}\"");
            return;
        }
        // CR/LF would let the config inject headers; other controls are invalid in a field value.
        for (char c : text) {
            const auto u = static_cast<unsigned char>(c);
            if ((u < 0x20 && c != '\t') || u == 0x7f) {
                fail(f, "must not contain control characters (CR, LF, ...)");
                return;
            }
        }
        out = std::move(text);
    }

    diagnostics& diag_;
    key_positions& where_;
};

}  // namespace

config load_config_string(std::string_view text, const std::string& path) {
    diagnostics diag(path);
    toml::table root;
    try {
        root = toml::parse(text, std::string_view(path));
    } catch (const toml::parse_error& e) {
        diag.add(to_pos(e.source().begin), "", std::string(e.description()));
        diag.raise();
    }

    config cfg;
    cfg.path = path;
    key_positions where;
    loader(diag, where).load(root, cfg);
    validate_config(cfg, where, diag);
    if (!diag.empty()) diag.raise();
    return cfg;
}

config load_config_file(const std::string& path) {
    const auto cannot_read = [&](const std::string& why) {
        diagnostics diag(path);
        diag.add({}, "", "cannot read the config file: " + why);
        diag.raise();
    };
    std::error_code ec;
    if (std::filesystem::is_directory(path, ec)) cannot_read("it is a directory");
    std::ifstream in(path, std::ios::binary);
    if (!in) cannot_read(std::strerror(errno));
    std::ostringstream text;
    text << in.rdbuf();
    if (in.bad()) cannot_read(std::strerror(errno));
    return load_config_string(text.str(), path);
}

}  // namespace msiproxy
