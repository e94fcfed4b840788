// Unit tests for log/logging: lines are captured through the test sink hook and checked as an
// operator's tooling would read them (JSON parses, one line per record, no secrets).
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/time_format.hpp"
#include "log/logging.hpp"
#include "support/captured_log.hpp"

namespace {

using msiproxy::test::captured_log;

msiproxy::log_config cfg(std::string level, std::string format, bool access = true) {
    msiproxy::log_config c;
    c.level = std::move(level);
    c.format = std::move(format);
    c.access = access;
    return c;
}

msiproxy::access_entry sample_entry() {
    msiproxy::access_entry e;
    e.route = "graph";
    e.method = "GET";
    e.host = "graph.microsoft.com";
    e.path = "/v1.0/me";
    e.status = 200;
    e.bytes_in = 0;
    e.bytes_out = 123;
    e.total_seconds = 0.012;
    e.upstream_seconds = 0.010;
    e.client = "127.0.0.1:5555";
    return e;
}

bool looks_like_timestamp_ms(const std::string& s) {
    // 2026-11-29T05:00:00.123Z
    if (s.size() != 24) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        const char c = s[i];
        switch (i) {
            case 4:
            case 7:
                if (c != '-') return false;
                break;
            case 10:
                if (c != 'T') return false;
                break;
            case 13:
            case 16:
                if (c != ':') return false;
                break;
            case 19:
                if (c != '.') return false;
                break;
            case 23:
                if (c != 'Z') return false;
                break;
            default:
                if (c < '0' || c > '9') return false;
        }
    }
    return true;
}

}  // namespace

TEST_CASE("logging: text lines carry UTC timestamp, level and message", "[unit][logging]") {
    captured_log log(cfg("info", "text"));
    spdlog::info("hello {}", "world");
    spdlog::warn("careful");
    spdlog::debug("not shown at info");
    auto lines = log.lines();
    REQUIRE(lines.size() == 2);
    CHECK(looks_like_timestamp_ms(lines[0].substr(0, 24)));
    CHECK(lines[0].substr(24) == " info  hello world");
    CHECK(lines[1].substr(24) == " warn  careful");
}

TEST_CASE("logging: text lines never span lines", "[unit][logging]") {
    captured_log log(cfg("info", "text"));
    spdlog::error("two\nlines\r and a \x01 bell");
    auto lines = log.lines();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].substr(24) == " error two\\nlines\\r and a \\x01 bell");
}

TEST_CASE("logging: json lines parse and escape the message", "[unit][logging]") {
    captured_log log(cfg("debug", "json"));
    const std::string nasty = "quote \" backslash \\ newline \n tab \t ctl \x02 end";
    spdlog::debug("{}", nasty);
    spdlog::error("bad utf-8 \xff\xfe here");
    auto lines = log.lines();
    REQUIRE(lines.size() == 2);
    auto j = nlohmann::json::parse(lines[0]);
    CHECK(j.size() == 3);
    CHECK(j["level"] == "debug");
    CHECK(j["msg"] == nasty);
    CHECK(looks_like_timestamp_ms(j["ts"].get<std::string>()));
    CHECK(lines[0].rfind("{\"ts\":", 0) == 0);  // ts first, for human readers
    auto k = nlohmann::json::parse(lines[1]);
    CHECK(k["level"] == "error");
    CHECK(k["msg"].get<std::string>().rfind("bad utf-8 ", 0) == 0);
}

TEST_CASE("logging: levels filter and reload changes level and format", "[unit][logging]") {
    captured_log log(cfg("warn", "text"));
    spdlog::info("dropped");
    spdlog::warn("kept 1");
    msiproxy::setup_logging(cfg("trace", "json"));
    spdlog::trace("kept 2");
    msiproxy::setup_logging(cfg("off", "text"));
    spdlog::critical("dropped");
    msiproxy::log_access(sample_entry());  // off silences the access log too
    auto lines = log.lines();
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].substr(24) == " warn  kept 1");
    CHECK(nlohmann::json::parse(lines[1])["msg"] == "kept 2");
}

TEST_CASE("logging: unknown level or format throws", "[unit][logging]") {
    captured_log log(cfg("info", "text"));
    CHECK_THROWS_AS(msiproxy::setup_logging(cfg("verbose", "text")), std::invalid_argument);
    CHECK_THROWS_AS(msiproxy::setup_logging(cfg("info", "xml")), std::invalid_argument);
    // The previous configuration stays in force.
    spdlog::info("still here");
    REQUIRE(log.lines().size() == 1);
}

TEST_CASE("logging: access line in text format", "[unit][logging]") {
    captured_log log(cfg("error", "text"));  // access lines do not follow the severity level
    msiproxy::log_access(sample_entry());
    auto e = sample_entry();
    e.route = "";
    e.status = 502;
    e.proxy_error = "connection_refused";
    e.path = "/with space\"q";
    msiproxy::log_access(e);
    auto lines = log.lines();
    REQUIRE(lines.size() == 2);
    CHECK(lines[0].substr(24) ==
          " info  route=graph method=GET host=graph.microsoft.com path=/v1.0/me status=200 "
          "bytes_in=0 bytes_out=123 duration=0.012 upstream=0.010 error=- client=127.0.0.1:5555");
    CHECK(lines[1].find(" route=- ") != std::string::npos);
    CHECK(lines[1].find(" path=\"/with space\\\"q\" ") != std::string::npos);
    CHECK(lines[1].find(" status=502 ") != std::string::npos);
    CHECK(lines[1].find(" error=connection_refused ") != std::string::npos);
    REQUIRE(spdlog::get("access") != nullptr);
}

TEST_CASE("logging: access line in json format", "[unit][logging]") {
    captured_log log(cfg("info", "json"));
    msiproxy::log_access(sample_entry());
    auto lines = log.lines();
    REQUIRE(lines.size() == 1);
    auto j = nlohmann::json::parse(lines[0]);
    CHECK(j["type"] == "access");
    CHECK(looks_like_timestamp_ms(j["ts"].get<std::string>()));
    CHECK(j["route"] == "graph");
    CHECK(j["method"] == "GET");
    CHECK(j["host"] == "graph.microsoft.com");
    CHECK(j["path"] == "/v1.0/me");
    CHECK(j["status"] == 200);
    CHECK(j["bytes_in"] == 0);
    CHECK(j["bytes_out"] == 123);
    CHECK(j["duration"].get<double>() == Approx(0.012));
    CHECK(j["upstream"].get<double>() == Approx(0.010));
    CHECK(j["error"].is_null());
    CHECK(j["client"] == "127.0.0.1:5555");
}

TEST_CASE("logging: access = false silences only the access log", "[unit][logging]") {
    captured_log log(cfg("info", "text", false));
    msiproxy::log_access(sample_entry());
    spdlog::info("other");
    auto lines = log.lines();
    REQUIRE(lines.size() == 1);
    CHECK(lines[0].substr(24) == " info  other");
}

TEST_CASE("logging: rate limited lines report what they suppressed", "[unit][logging]") {
    captured_log log(cfg("info", "text"));
    using spdlog::level::err;
    using spdlog::level::warn;
    msiproxy::log_rate_limited("imds", warn, "imds down");
    msiproxy::log_rate_limited("imds", warn, "imds down");
    msiproxy::log_rate_limited("imds", warn, "imds down");
    msiproxy::log_rate_limited("other", err, "other failure");  // keys are independent
    // A zero window means the window has reopened.
    msiproxy::log_rate_limited("imds", warn, "imds down", 0);
    msiproxy::log_rate_limited("imds", warn, "imds down", 0);
    auto lines = log.lines();
    REQUIRE(lines.size() == 4);
    CHECK(lines[0].substr(24) == " warn  imds down");
    CHECK(lines[1].substr(24) == " error other failure");
    CHECK(lines[2].substr(24) == " warn  imds down (2 similar messages suppressed)");
    CHECK(lines[3].substr(24) == " warn  imds down");
}

TEST_CASE("logging: redact_header hides credentials, keeps the scheme", "[unit][logging]") {
    using msiproxy::redact_header;
    CHECK(redact_header("Authorization", "Bearer eyJ0eXAiOiJKV1Qi.abc.def") == "Bearer <redacted>");
    CHECK(redact_header("authorization", "Basic dXNlcjpwYXNz") == "Basic <redacted>");
    CHECK(redact_header("PROXY-AUTHORIZATION", "  Bearer   x") == "Bearer <redacted>");
    CHECK(redact_header("Authorization", "justatoken") == "<redacted>");
    CHECK(redact_header("Authorization", "") == "<redacted>");
    CHECK(redact_header("Content-Type", "application/json") == "application/json");
    CHECK(redact_header("X-Authorization-Hint", "Bearer x") == "Bearer x");
}

TEST_CASE("time_format: RFC 3339 in UTC, seconds and milliseconds", "[unit][logging]") {
    using namespace std::chrono;
    const auto t = sys_days{year{2026} / 11 / 29} + 5h + 4min + 3s + 123ms + 456us;
    CHECK(msiproxy::to_rfc3339(t) == "2026-11-29T05:04:03Z");
    CHECK(msiproxy::to_rfc3339_ms(t) == "2026-11-29T05:04:03.123Z");
    // Before the epoch the second is floored, not truncated towards zero.
    const auto before = system_clock::time_point{} - 1500ms;
    CHECK(msiproxy::to_rfc3339_ms(before) == "1969-12-31T23:59:58.500Z");
}
