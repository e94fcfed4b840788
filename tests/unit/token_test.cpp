// Token response parsing (every expires format), failure classes, refresh and backoff policy.
#include <catch2/catch.hpp>

#include "identity/token.hpp"

using namespace msiproxy;
using namespace std::chrono_literals;
using std::chrono::seconds;

namespace {

const sys_time now = sys_time(seconds(1'800'000'000));

access_token ok(const fetch_outcome& o) {
    REQUIRE(std::holds_alternative<access_token>(o));
    return std::get<access_token>(o);
}

fetch_failure failed(const fetch_outcome& o) {
    REQUIRE(std::holds_alternative<fetch_failure>(o));
    return std::get<fetch_failure>(o);
}

}  // namespace

TEST_CASE("token: IMDS response with string numbers", "[unit][token]") {
    auto t = ok(parse_token_response(
        R"({"access_token":"abc","expires_in":"3599","expires_on":"1800003599","resource":"r","token_type":"Bearer"})",
        now));
    CHECK(t.value == "abc");
    CHECK(t.expires_on == now + 3599s);
    CHECK_FALSE(t.refresh_on);
}

TEST_CASE("token: expires_in as a number, refresh_in honoured", "[unit][token]") {
    auto t = ok(
        parse_token_response(R"({"access_token":"a","expires_in":3600,"refresh_in":1800})", now));
    CHECK(t.expires_on == now + 3600s);
    REQUIRE(t.refresh_on);
    CHECK(*t.refresh_on == now + 1800s);
}

TEST_CASE("token: App Service 2019 epoch expires_on only", "[unit][token]") {
    auto t = ok(parse_token_response(R"({"access_token":"a","expires_on":"1800007200"})", now));
    CHECK(t.expires_on == sys_time(seconds(1'800'007'200)));
    auto n = ok(parse_token_response(R"({"access_token":"a","expires_on":1800007200})", now));
    CHECK(n.expires_on == t.expires_on);
}

TEST_CASE("token: expires_on date strings", "[unit][token]") {
    // 2027-01-15 16:00:00 UTC
    const sys_time at = sys_time(seconds(1'800'028'800));
    CHECK(parse_expires_on("01/15/2027 16:00:00 +00:00") == at);
    CHECK(parse_expires_on("1/15/2027 4:00:00 PM +00:00") == at);
    CHECK(parse_expires_on("1/15/2027 8:00:00 AM +00:00") == at - 8h);
    CHECK(parse_expires_on("1/15/2027 12:00:00 AM +00:00") == at - 16h);
    CHECK(parse_expires_on("2027-01-15T16:00:00Z") == at);
    CHECK(parse_expires_on("2027-01-15T16:00:00.0000000+00:00") == at);
    CHECK(parse_expires_on("2027-01-15T17:30:00+01:30") == at);
    CHECK(parse_expires_on("1800028800") == at);
    CHECK_FALSE(parse_expires_on("tomorrow"));
    CHECK_FALSE(parse_expires_on("13/45/2027 08:00:00 +00:00"));
    CHECK_FALSE(parse_expires_on("2027-01-15T08:00:00+0100"));
    auto t = ok(parse_token_response(
        R"({"access_token":"a","expires_on":"01/15/2027 16:00:00 +00:00"})", now));
    CHECK(t.expires_on == at);
}

TEST_CASE("token: bad responses are named", "[unit][token]") {
    CHECK(failed(parse_token_response("not json", now)).kind == failure_kind::bad_response);
    CHECK(
        failed(parse_token_response(R"({"expires_in":"10"})", now)).message.find("access_token") !=
        std::string::npos);
    CHECK(failed(parse_token_response(R"({"access_token":"a"})", now)).message.find("expires") !=
          std::string::npos);
    CHECK(failed(parse_token_response(R"({"access_token":"a","expires_on":"1700000000"})", now))
              .message.find("expired") != std::string::npos);
    CHECK(failed(parse_token_response(R"({"access_token":"a","expires_in":"x"})", now)).kind ==
          failure_kind::bad_response);
}

TEST_CASE("token: failure classes follow the Azure SDKs", "[unit][token]") {
    auto nf = classify_http_failure(
        400, R"({"error":"invalid_request","error_description":"Identity not found"})", "");
    CHECK(nf.kind == failure_kind::identity_not_found);
    CHECK_FALSE(nf.retryable);
    CHECK(nf.message.find("Identity not found") != std::string::npos);
    for (unsigned s : {404u, 408u, 410u, 500u, 503u})
        CHECK(classify_http_failure(s, "", "").retryable);
    auto th = classify_http_failure(429, "{}", "7");
    CHECK(th.kind == failure_kind::throttled);
    REQUIRE(th.retry_after);
    CHECK(*th.retry_after == 7s);
    auto sf = classify_http_failure(500, R"({"error":{"code":"X","message":"boom"}})", "");
    CHECK(sf.message.find("boom") != std::string::npos);
}

TEST_CASE("token: refresh at about half the lifetime, never too close to expiry", "[unit][token]") {
    access_token day{"t", now + 24h, now, std::nullopt};
    for (double j : {0.0, 0.5, 0.999}) {
        auto p = plan_refresh(day, now, false, j);
        CHECK(p.usable_until == now + 24h - 5min);
        CHECK(p.refresh_at >= now + 12h - 72min);
        CHECK(p.refresh_at <= now + 12h + 72min);
    }
    access_token short_lived{"t", now + 8s, now, std::nullopt};
    auto p = plan_refresh(short_lived, now, false, 0.5);
    CHECK(p.usable_until == now + 7s);
    CHECK(p.refresh_at == now + 4s);
    access_token suggested{"t", now + 24h, now, now + 1h};
    CHECK(plan_refresh(suggested, now, false, 0.5).refresh_at == now + 1h);
}

TEST_CASE("token: an endpoint returning its cached token cannot cause a tight loop",
          "[unit][token]") {
    // The same token back with 10 minutes left, again and again: each refresh waits at least
    // 5 s and the number of fetches before expiry stays small.
    sys_time t = now;
    const sys_time expiry = now + 10min;
    int fetches = 0;
    while (t < expiry && fetches < 1000) {
        access_token same{"same", expiry, t, std::nullopt};
        auto p = plan_refresh(same, t, true, 0.5);
        REQUIRE(p.refresh_at >= t + 5s);
        t = p.refresh_at;
        ++fetches;
    }
    CHECK(fetches < 30);
}

TEST_CASE("token: backoff doubles to the cap and honours Retry-After", "[unit][token]") {
    CHECK(backoff_delay(0, 60s, 0.5, std::nullopt) == 1000ms);
    CHECK(backoff_delay(1, 60s, 0.5, std::nullopt) == 2000ms);
    CHECK(backoff_delay(3, 60s, 0.5, std::nullopt) == 8000ms);
    CHECK(backoff_delay(20, 60s, 0.5, std::nullopt) == 60000ms);
    CHECK(backoff_delay(0, 60s, 0.0, std::nullopt) == 800ms);
    CHECK(backoff_delay(0, 60s, 0.999, std::nullopt) < 1200ms);
    CHECK(backoff_delay(0, 60s, 0.5, 30s) == 30000ms);
    CHECK(backoff_delay(0, 60s, 0.5, 24h) == 600000ms);
}

// Found by tests/fuzz/token_response_fuzz.cpp: out-of-range numbers were cast (1e300 to long long)
// or scaled to system_clock's nanoseconds (overflow), both undefined behaviour.
TEST_CASE("token: absurd numbers are unusable, not undefined behaviour", "[unit][token]") {
    failed(parse_token_response(R"({"access_token":"a","expires_in":1e300})", now));
    failed(parse_token_response(R"({"access_token":"a","expires_in":"-1e300"})", now));
    failed(parse_token_response(R"({"access_token":"a","expires_in":"99999999999999"})", now));
    failed(parse_token_response(R"({"access_token":"a","expires_on":99999999999999})", now));
    failed(parse_token_response(R"({"access_token":"a","expires_on":-9223372036854775808})", now));
    // A sane expires_on still wins over a nonsense expires_in.
    auto t = ok(parse_token_response(
        R"({"access_token":"a","expires_in":9e18,"expires_on":"1800003600"})", now));
    CHECK(t.expires_on == now + 3600s);
    // A nonsense refresh_in is ignored.
    t = ok(
        parse_token_response(R"({"access_token":"a","expires_in":3600,"refresh_in":1e19})", now));
    CHECK_FALSE(t.refresh_on);
    CHECK_FALSE(parse_expires_on("99999999999999"));
    CHECK_FALSE(parse_expires_on("9999-12-31T23:59:59Z"));
    CHECK_FALSE(parse_expires_on("12/31/9999 11:59:59 PM +00:00"));
    CHECK(parse_expires_on("2100-01-01T00:00:00Z"));
}

TEST_CASE("token: a huge Retry-After is capped, not overflowed", "[unit][token]") {
    auto f = classify_http_failure(429, "", "99999999999999999");
    REQUIRE(f.retry_after);
    CHECK(*f.retry_after == 24h);
    CHECK(backoff_delay(0, 60s, 0.5, f.retry_after) == 10min);
}
