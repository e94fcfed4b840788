// Self-tests of tests/support: the fakes, the client and the certificates must be right before
// the integration tests can blame the proxy. Real sockets on 127.0.0.1, no app involved.
#include <catch2/catch.hpp>

#include <filesystem>

#include <nlohmann/json.hpp>

#include "support/byte_pattern.hpp"
#include "support/config_template.hpp"
#include "support/fake_identity.hpp"
#include "support/fake_upstream.hpp"
#include "support/process_memory.hpp"
#include "support/temp_dir.hpp"
#include "support/test_client.hpp"
#include "support/tls_certs.hpp"

namespace t = msiproxy::test;

TEST_CASE("temp_dir is removed with its files", "[unit][support]") {
    std::filesystem::path where;
    {
        t::temp_dir dir;
        where = dir.path();
        const auto file = dir.write_file("a.txt", "hello");
        REQUIRE(std::filesystem::file_size(file) == 5);
    }
    CHECK_FALSE(std::filesystem::exists(where));
}

TEST_CASE("byte pattern checksum does not depend on how the bytes are split", "[unit][support]") {
    std::vector<char> all(300000);
    t::fill_pattern(all.data(), all.size(), 0);
    CHECK(all[0] == t::pattern_byte(0));
    CHECK(all[251] == t::pattern_byte(0));
    CHECK(all[299999] == t::pattern_byte(299999));

    t::checksum whole;
    whole.update(all.data(), all.size());
    t::checksum pieces;
    std::size_t off = 0;
    for (std::size_t step : {1u, 7u, 65536u, 100u, 234356u}) {
        std::vector<char> part(step);
        t::fill_pattern(part.data(), step, off);
        pieces.update(part.data(), step);
        off += step;
    }
    REQUIRE(off == all.size());
    CHECK(pieces.value() == whole.value());
    CHECK(t::pattern_checksum(all.size()) == whole.value());
    CHECK(t::pattern_checksum(all.size() - 1) != whole.value());
}

TEST_CASE("substitute fills known placeholders only", "[unit][support]") {
    const auto out = t::substitute(R"(a = "{x}" b = "Bearer {token}" c = { d = 1 } e = {y})",
                                   {{"x", "1"}, {"y", "2"}});
    CHECK(out == R"(a = "1" b = "Bearer {token}" c = { d = 1 } e = 2)");
}

TEST_CASE("test certificates are PEM and written to files", "[unit][support]") {
    t::test_certificates certs({"api.test"});
    CHECK(certs.ca().cert_pem.rfind("-----BEGIN CERTIFICATE-----", 0) == 0);
    CHECK(certs.leaf().key_pem.rfind("-----BEGIN PRIVATE KEY-----", 0) == 0);
    CHECK(certs.ca().cert_pem != certs.untrusted_ca().cert_pem);
    CHECK(std::filesystem::exists(certs.ca_file()));
    CHECK(std::filesystem::exists(certs.untrusted_leaf().key_file));
}

TEST_CASE("fake upstream answers and records over plain HTTP", "[unit][support]") {
    t::fake_upstream up;
    t::client_connection c(up.port());

    SECTION("default answer, keep-alive, recorded heads") {
        auto r =
            c.request(t::origin_request("GET", "/a?x=1%202", "example.test", {{"X-One", "1"}}));
        REQUIRE(r);
        CHECK(r->status == 200);
        CHECK(r->body == "ok");
        r = c.request(t::origin_request("POST", "/b", "example.test", {}, "hello"));
        REQUIRE(r);
        CHECK(r->status == 200);
        REQUIRE(up.wait_for_requests(2));
        const auto reqs = up.requests().all();
        CHECK(reqs[0].method == "GET");
        CHECK(reqs[0].target == "/a?x=1%202");
        CHECK(reqs[0].path == "/a");
        CHECK(reqs[0].query.at("x") == "1 2");
        CHECK(reqs[0].header("x-one") == "1");
        CHECK(reqs[0].header("Host") == "example.test");
        CHECK(reqs[1].body_bytes == 5);
        CHECK(reqs[0].connection_id == reqs[1].connection_id);
        CHECK(up.connections_accepted() == 1);
        CHECK(up.tls_handshakes() == 0);
    }
    SECTION("status, pattern body, chunked, echo") {
        auto r = c.request(t::origin_request("GET", "/", "h", {{"x-fake-status", "404"}}));
        REQUIRE(r);
        CHECK(r->status == 404);
        r = c.request(t::origin_request("GET", "/", "h", {{"x-fake-body-bytes", "200000"}}));
        REQUIRE(r);
        CHECK(r->header("Content-Length") == "200000");
        CHECK(r->body_bytes == 200000);
        CHECK(r->body_checksum == t::pattern_checksum(200000));
        r = c.request(t::origin_request(
            "GET", "/", "h", {{"x-fake-body-bytes", "150000"}, {"x-fake-chunked", "1"}}));
        REQUIRE(r);
        CHECK(r->chunked);
        CHECK_FALSE(r->has_header("Content-Length"));
        CHECK(r->body_checksum == t::pattern_checksum(150000));
        r = c.request(
            t::origin_request("GET", "/e", "h", {{"x-fake-echo-headers", "1"}, {"X-Mark", "m1"}}));
        REQUIRE(r);
        CHECK(r->body.find("GET /e HTTP/1.1") == 0);
        CHECK(r->body.find("X-Mark: m1") != std::string::npos);
        CHECK(up.connections_accepted() == 1);
    }
    SECTION("HEAD, 204 and 304 carry no body and keep the connection usable") {
        auto r = c.request(t::origin_request("HEAD", "/", "h", {{"x-fake-body-bytes", "1000"}}),
                           t::read_options{.skip_body = true});
        REQUIRE(r);
        CHECK(r->header("Content-Length") == "1000");
        CHECK(r->body_bytes == 0);
        r = c.request(t::origin_request("GET", "/", "h", {{"x-fake-status", "204"}}));
        REQUIRE(r);
        CHECK(r->status == 204);
        CHECK(r->body_bytes == 0);
        r = c.request(t::origin_request("GET", "/", "h", {{"x-fake-status", "304"}}));
        REQUIRE(r);
        CHECK(r->status == 304);
        r = c.request(t::origin_request("GET", "/", "h"));
        REQUIRE(r);
        CHECK(r->body == "ok");
        CHECK(up.connections_accepted() == 1);
    }
    SECTION("close, no-length, reset and delay") {
        auto r = c.request(t::origin_request("GET", "/", "h", {{"x-fake-close", "1"}}));
        REQUIRE(r);
        CHECK(r->header("Connection") == "close");
        CHECK(c.wait_closed());

        t::client_connection c2(up.port());
        r = c2.request(t::origin_request(
            "GET", "/", "h", {{"x-fake-no-length", "1"}, {"x-fake-body-bytes", "70000"}}));
        REQUIRE(r);
        CHECK_FALSE(r->has_header("Content-Length"));
        CHECK(r->body_checksum == t::pattern_checksum(70000));

        t::client_connection c3(up.port());
        r = c3.request(t::origin_request("GET", "/", "h", {{"x-fake-reset", "1"}}));
        CHECK_FALSE(r);

        t::client_connection c4(up.port());
        r = c4.request(t::origin_request("GET", "/", "h", {{"x-fake-delay-ms", "50"}}));
        REQUIRE(r);
        CHECK(r->status == 200);
        REQUIRE(up.wait_for_requests(4));
        CHECK(up.connections_accepted() == 4);
    }
    SECTION("streamed uploads: Content-Length, chunked with 100-continue") {
        const std::uint64_t n = 32ull * 1024 * 1024 + 17;
        auto r = c.upload({.target = "/up", .host = "h", .bytes = n});
        REQUIRE(r);
        CHECK(r->status == 200);
        r = c.upload({.method = "PUT",
                      .target = "/up2",
                      .host = "h",
                      .bytes = 1000001,
                      .chunked = true,
                      .expect_continue = true,
                      .piece = 10000});
        REQUIRE(r);
        CHECK(r->status == 200);
        REQUIRE(up.wait_for_requests(2));
        const auto reqs = up.requests().all();
        CHECK(reqs[0].body_bytes == n);
        CHECK(reqs[0].body_checksum == t::pattern_checksum(n));
        CHECK(reqs[1].method == "PUT");
        CHECK(reqs[1].body_bytes == 1000001);
        CHECK(reqs[1].body_checksum == t::pattern_checksum(1000001));
        CHECK(reqs[1].header("Transfer-Encoding") == "chunked");
        CHECK(up.continues_sent() == 1);
    }
}

TEST_CASE("fake upstream speaks TLS with the test CA", "[unit][support]") {
    t::test_certificates certs;
    t::fake_upstream up({.tls = certs.leaf()});

    SECTION("trusted client") {
        t::client_connection c(up.port(), std::chrono::seconds(10),
                               t::client_tls{certs.ca().cert_pem});
        auto r = c.request(t::origin_request("GET", "/tls", "localhost"));
        REQUIRE(r);
        CHECK(r->body == "ok");
        r = c.request(
            t::origin_request("GET", "/tls", "localhost",
                              {{"x-fake-no-length", "1"}, {"x-fake-body-bytes", "5000"}}));
        REQUIRE(r);
        CHECK(r->body_bytes == 5000);
        CHECK(up.tls_handshakes() == 1);
    }
    SECTION("client trusting only the other CA fails the handshake") {
        CHECK_THROWS(t::client_connection(up.port(), std::chrono::seconds(10),
                                          t::client_tls{certs.untrusted_ca().cert_pem}));
        CHECK(up.tls_handshakes() == 0);
        CHECK(up.requests().size() == 0);
    }
}

TEST_CASE("fake identity behaves like IMDS", "[unit][support]") {
    t::fake_identity id;
    CHECK(id.url() ==
          "http://127.0.0.1:" + std::to_string(id.port()) + "/metadata/identity/oauth2/token");
    const std::string target =
        "/metadata/identity/oauth2/token?api-version=2018-02-01&resource=https%3A%2F%2Fapi.test";
    const t::header_list metadata{{"Metadata", "true"}};
    t::client_connection c(id.port());

    auto r = c.request(t::origin_request("GET", target, "127.0.0.1", metadata));
    REQUIRE(r);
    REQUIRE(r->status == 200);
    auto body = nlohmann::json::parse(r->body);
    CHECK(body["access_token"] == "fake-token-1");
    CHECK(body["token_type"] == "Bearer");
    CHECK(body["expires_in"] == "86399");
    CHECK(body["expires_on"].is_string());
    CHECK(body["resource"] == "https://api.test");
    CHECK(id.token_for("https://api.test") == "fake-token-1");

    REQUIRE(id.wait_for_requests(1));
    const auto rec = id.requests().all().at(0);
    CHECK(rec.query.at("resource") == "https://api.test");
    CHECK(rec.query.at("api-version") == "2018-02-01");
    CHECK(rec.header("Metadata") == "true");

    r = c.request(t::origin_request("GET", target, "127.0.0.1"));
    REQUIRE(r);
    CHECK(r->status == 400);  // no Metadata: true

    id.set_token("fixed");
    id.set_lifetime(std::chrono::seconds(120));
    r = c.request(t::origin_request("GET", target, "127.0.0.1", metadata));
    REQUIRE(r);
    body = nlohmann::json::parse(r->body);
    CHECK(body["access_token"] == "fixed");
    CHECK(body["expires_in"] == "120");

    id.fail_with(429, R"({"error":"slow down"})", "7");
    r = c.request(t::origin_request("GET", target, "127.0.0.1", metadata));
    REQUIRE(r);
    CHECK(r->status == 429);
    CHECK(r->header("Retry-After") == "7");

    id.succeed();
    id.answer_garbage();
    r = c.request(t::origin_request("GET", target, "127.0.0.1", metadata));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK_THROWS(nlohmann::json::parse(r->body));

    id.succeed();
    r = c.request(t::origin_request("GET", target, "127.0.0.1", metadata));
    REQUIRE(r);
    CHECK(r->status == 200);
    CHECK(id.request_count() == 6);
    CHECK(id.issued_tokens().size() == 3);  // failures and garbage issue nothing
}

TEST_CASE("peak RSS can be read and reset", "[unit][support]") {
    const auto rss = t::current_rss_bytes();
    REQUIRE(rss);
    CHECK(*rss > 0);
    if (t::reset_peak_rss()) {
        const auto peak = t::peak_rss_bytes();
        REQUIRE(peak);
        CHECK(*peak >= *rss / 2);
    }
}
