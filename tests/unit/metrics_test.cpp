// Unit tests for admin/metrics: the rendered text is parsed back as a Prometheus scraper would,
// so the assertions are about series and values, not about byte layout.
#include <catch2/catch.hpp>

#include <map>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "admin/metrics.hpp"
#include "version.hpp"

namespace {

struct sample {
    std::string name;
    std::map<std::string, std::string> labels;
    double value = 0;
};

struct exposition {
    std::vector<sample> samples;
    std::map<std::string, std::string> types;  // family -> type
    std::set<std::string> helps;
};

// A strict reading of format 0.0.4: anything malformed fails the test.
exposition parse(const std::string& text) {
    exposition ex;
    std::istringstream in(text);
    std::string line;
    while (std::getline(in, line)) {
        REQUIRE_FALSE(line.empty());
        if (line.rfind("# HELP ", 0) == 0) {
            auto rest = line.substr(7);
            ex.helps.insert(rest.substr(0, rest.find(' ')));
            continue;
        }
        if (line.rfind("# TYPE ", 0) == 0) {
            auto rest = line.substr(7);
            auto sp = rest.find(' ');
            REQUIRE(sp != std::string::npos);
            ex.types[rest.substr(0, sp)] = rest.substr(sp + 1);
            continue;
        }
        REQUIRE(line[0] != '#');
        sample s;
        std::size_t i = 0;
        while (i < line.size() && line[i] != '{' && line[i] != ' ')
            s.name += line[i++];
        REQUIRE(i < line.size());
        if (line[i] == '{') {
            ++i;
            while (line.at(i) != '}') {
                std::string key;
                while (line.at(i) != '=')
                    key += line[i++];
                ++i;
                REQUIRE(line.at(i) == '"');
                ++i;
                std::string value;
                while (line.at(i) != '"') {
                    if (line[i] == '\\') {
                        char e = line.at(++i);
                        REQUIRE((e == '\\' || e == '"' || e == 'n'));
                        value += e == 'n' ? '\n' : e;
                    } else {
                        value += line[i];
                    }
                    ++i;
                }
                ++i;
                s.labels[key] = value;
                if (line.at(i) == ',') ++i;
            }
            ++i;
        }
        REQUIRE(line.at(i) == ' ');
        std::string v = line.substr(i + 1);
        s.value = v == "+Inf" ? HUGE_VAL : std::stod(v);
        ex.samples.push_back(std::move(s));
    }
    return ex;
}

const sample* find(const exposition& ex, const std::string& name,
                   const std::map<std::string, std::string>& labels) {
    for (const auto& s : ex.samples) {
        if (s.name == name && s.labels == labels) return &s;
    }
    return nullptr;
}

double value_of(const exposition& ex, const std::string& name,
                const std::map<std::string, std::string>& labels) {
    const sample* s = find(ex, name, labels);
    INFO(name);
    REQUIRE(s != nullptr);
    return s->value;
}

}  // namespace

TEST_CASE("metrics: every family has HELP and TYPE even when empty", "[unit][metrics]") {
    msiproxy::metrics m;
    auto ex = parse(m.render());
    const std::map<std::string, std::string> expected{
        {"msiproxy_requests_total", "counter"},
        {"msiproxy_request_duration_seconds", "histogram"},
        {"msiproxy_upstream_errors_total", "counter"},
        {"msiproxy_token_refreshes_total", "counter"},
        {"msiproxy_token_expiry_timestamp_seconds", "gauge"},
        {"msiproxy_connections_active", "gauge"},
        {"msiproxy_build_info", "gauge"},
    };
    for (const auto& [family, type] : expected) {
        INFO(family);
        CHECK(ex.types[family] == type);
        CHECK(ex.helps.count(family) == 1);
    }
    CHECK(value_of(ex, "msiproxy_connections_active", {}) == 0);
    CHECK(value_of(ex, "msiproxy_build_info", {{"version", MSIPROXY_VERSION}}) == 1);
    CHECK(value_of(ex, "process_start_time_seconds", {}) > 1.7e9);
    // Every sample belongs to a declared family (histogram suffixes included).
    for (const auto& s : ex.samples) {
        std::string family = s.name;
        for (std::string suffix : {"_bucket", "_sum", "_count"}) {
            if (family.size() > suffix.size() &&
                family.compare(family.size() - suffix.size(), suffix.size(), suffix) == 0 &&
                ex.types.count(family.substr(0, family.size() - suffix.size())) == 1) {
                family.resize(family.size() - suffix.size());
            }
        }
        INFO(s.name);
        CHECK(ex.types.count(family) == 1);
    }
}

TEST_CASE("metrics: request counters and histogram", "[unit][metrics]") {
    msiproxy::metrics m;
    m.request_finished("graph", 200, 0.004);
    m.request_finished("graph", 200, 0.2);
    m.request_finished("graph", 502, 30);
    m.request_finished("", 403, 0.0001);
    auto ex = parse(m.render());

    CHECK(value_of(ex, "msiproxy_requests_total", {{"route", "graph"}, {"code", "200"}}) == 2);
    CHECK(value_of(ex, "msiproxy_requests_total", {{"route", "graph"}, {"code", "502"}}) == 1);
    CHECK(value_of(ex, "msiproxy_requests_total", {{"route", ""}, {"code", "403"}}) == 1);

    const std::string b = "msiproxy_request_duration_seconds_bucket";
    CHECK(value_of(ex, b, {{"route", "graph"}, {"le", "0.001"}}) == 0);
    CHECK(value_of(ex, b, {{"route", "graph"}, {"le", "0.005"}}) == 1);
    CHECK(value_of(ex, b, {{"route", "graph"}, {"le", "0.25"}}) == 2);
    CHECK(value_of(ex, b, {{"route", "graph"}, {"le", "10"}}) == 2);
    CHECK(value_of(ex, b, {{"route", "graph"}, {"le", "+Inf"}}) == 3);
    CHECK(value_of(ex, "msiproxy_request_duration_seconds_count", {{"route", "graph"}}) == 3);
    CHECK(value_of(ex, "msiproxy_request_duration_seconds_sum", {{"route", "graph"}}) ==
          Approx(30.204));
    CHECK(value_of(ex, b, {{"route", ""}, {"le", "0.001"}}) == 1);

    // Buckets are cumulative: non-decreasing in le order as rendered.
    double previous = 0;
    for (const auto& s : ex.samples) {
        if (s.name != b || s.labels.at("route") != "graph") continue;
        CHECK(s.value >= previous);
        previous = s.value;
    }
}

TEST_CASE("metrics: upstream errors, token refreshes, expiry, connections", "[unit][metrics]") {
    msiproxy::metrics m;
    m.upstream_error("graph", "connection_refused");
    m.upstream_error("graph", "connection_refused");
    m.upstream_error("vault", "dns_error");
    m.token_refresh("https://graph.microsoft.com", "success");
    m.token_refresh("https://graph.microsoft.com", "failure");
    m.token_refresh("https://graph.microsoft.com", "success");
    m.token_expiry("https://graph.microsoft.com", 1795237200);
    m.token_expiry("https://graph.microsoft.com", 1795240800);  // replaced, not added
    m.connection_opened();
    m.connection_opened();
    m.connection_opened();
    m.connection_closed();
    auto ex = parse(m.render());

    CHECK(value_of(ex, "msiproxy_upstream_errors_total",
                   {{"route", "graph"}, {"error", "connection_refused"}}) == 2);
    CHECK(value_of(ex, "msiproxy_upstream_errors_total",
                   {{"route", "vault"}, {"error", "dns_error"}}) == 1);
    CHECK(value_of(ex, "msiproxy_token_refreshes_total",
                   {{"resource", "https://graph.microsoft.com"}, {"result", "success"}}) == 2);
    CHECK(value_of(ex, "msiproxy_token_refreshes_total",
                   {{"resource", "https://graph.microsoft.com"}, {"result", "failure"}}) == 1);
    CHECK(value_of(ex, "msiproxy_token_expiry_timestamp_seconds",
                   {{"resource", "https://graph.microsoft.com"}}) == 1795240800);
    CHECK(value_of(ex, "msiproxy_connections_active", {}) == 2);
}

TEST_CASE("metrics: label values are escaped", "[unit][metrics]") {
    msiproxy::metrics m;
    const std::string nasty = "a\\b\"c\nd}e,f=g";
    m.upstream_error(nasty, "x");
    const std::string text = m.render();
    CHECK(text.find("route=\"a\\\\b\\\"c\\nd}e,f=g\"") != std::string::npos);
    auto ex = parse(text);  // the parser unescapes: the value round-trips
    CHECK(value_of(ex, "msiproxy_upstream_errors_total", {{"route", nasty}, {"error", "x"}}) == 1);
}

TEST_CASE("metrics: concurrent updates are all counted", "[unit][metrics]") {
    msiproxy::metrics m;
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
        threads.emplace_back([&] {
            for (int i = 0; i < 1000; ++i) {
                m.request_finished("graph", 200, 0.01);
                m.connection_opened();
                m.connection_closed();
                if (i % 100 == 0) (void)m.render();
            }
        });
    }
    for (auto& t : threads)
        t.join();
    auto ex = parse(m.render());
    CHECK(value_of(ex, "msiproxy_requests_total", {{"route", "graph"}, {"code", "200"}}) == 4000);
    CHECK(value_of(ex, "msiproxy_request_duration_seconds_count", {{"route", "graph"}}) == 4000);
    CHECK(value_of(ex, "msiproxy_connections_active", {}) == 0);
}
