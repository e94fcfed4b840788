// The session's pure request-head checks: where a head ends, raw syntax, target forms and the
// Transfer-Encoding rule (the code the request_head fuzz target drives).
#include <catch2/catch.hpp>

#include <string>
#include <string_view>

#include "listener/request_head.hpp"

using namespace msiproxy;

TEST_CASE("request head: the head ends at the first empty line", "[unit][request_head]") {
    constexpr auto npos = std::string_view::npos;
    CHECK(find_head_end("GET / HTTP/1.1\r\nHost: a\r\n\r\nbody") == 27);
    CHECK(find_head_end("GET / HTTP/1.1\r\nHost: a\r\n") == npos);
    CHECK(find_head_end("GET / HTTP/1.1\r\nHost: a\r\n\r") == npos);
    // A bare LF still ends the head, so that raw_head_is_clean can refuse it.
    CHECK(find_head_end("GET / HTTP/1.1\nHost: a\n\n") == 24);
    CHECK(find_head_end("") == npos);
    // Searching from an offset finds the same end.
    std::string_view h = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    CHECK(find_head_end(h, 20) == h.size());
}

TEST_CASE("request head: obs-fold and bare LF are refused", "[unit][request_head]") {
    CHECK(raw_head_is_clean("GET / HTTP/1.1\r\nHost: a\r\n\r\n"));
    CHECK_FALSE(raw_head_is_clean("GET / HTTP/1.1\nHost: a\r\n\r\n"));
    CHECK_FALSE(raw_head_is_clean("GET / HTTP/1.1\r\nHost: a\r\n X: b\r\n\r\n"));
    CHECK_FALSE(raw_head_is_clean("GET / HTTP/1.1\r\nHost: a\r\n\tX: b\r\n\r\n"));
    CHECK_FALSE(raw_head_is_clean("\nGET / HTTP/1.1\r\n\r\n"));
}

TEST_CASE("request head: header fields are counted between request line and empty line",
          "[unit][request_head]") {
    CHECK(header_field_count("GET / HTTP/1.1\r\n\r\n") == 0);
    CHECK(header_field_count("GET / HTTP/1.1\r\nHost: a\r\n\r\n") == 1);
    std::string head = "GET / HTTP/1.1\r\n";
    for (int i = 0; i < 300; ++i)
        head += "X-" + std::to_string(i) + ": v\r\n";
    head += "\r\n";
    CHECK(header_field_count(head) == 300);
    CHECK(header_field_count("") == 0);
}

TEST_CASE("request head: origin-form needs exactly one valid Host", "[unit][request_head]") {
    target_info t;
    std::string why;
    REQUIRE(parse_request_target("/svc/a?x=1", 1, "API.Example.com:8080", t, why));
    CHECK_FALSE(t.absolute);
    CHECK(t.host == "api.example.com");
    CHECK(t.port == 8080);
    CHECK(t.authority == "API.Example.com:8080");
    CHECK(t.path == "/svc/a?x=1");

    CHECK_FALSE(parse_request_target("/", 0, "", t, why));
    CHECK(why == "missing Host header");
    CHECK_FALSE(parse_request_target("/", 2, "a", t, why));
    CHECK(why == "more than one Host header");
    CHECK_FALSE(parse_request_target("/", 1, "user@a", t, why));
    CHECK(why == "invalid Host header");
    CHECK_FALSE(parse_request_target("/", 1, "", t, why));
    CHECK_FALSE(parse_request_target("/", 1, "a:0", t, why));
    CHECK(why == "invalid port in Host header");
}

TEST_CASE("request head: absolute-form http and https only", "[unit][request_head]") {
    target_info t;
    std::string why;
    REQUIRE(
        parse_request_target("https://X.vault.azure.net/secrets/s?api-version=7.4", 0, "", t, why));
    CHECK(t.absolute);
    CHECK(t.tls);
    CHECK(t.host == "x.vault.azure.net");
    CHECK(t.port == 443);
    CHECK(t.path == "/secrets/s?api-version=7.4");
    REQUIRE(parse_request_target("http://h:81", 0, "", t, why));
    CHECK(t.path == "/");
    CHECK(t.port == 81);
    CHECK_FALSE(parse_request_target("ftp://h/", 0, "", t, why));
    CHECK_FALSE(parse_request_target("http://u@h/", 0, "", t, why));
    CHECK_FALSE(parse_request_target("http://h/#f", 0, "", t, why));
    // Found by tests/fuzz/request_head_fuzz.cpp: Boost.URL reads "h:x/p" as an empty port and
    // the rootless path "x/p", which was forwarded as the request target.
    CHECK_FALSE(parse_request_target("http://h:wre0/secrets/s", 0, "", t, why));
    // An empty port is the default one, not port 0.
    REQUIRE(parse_request_target("http://h:/x", 0, "", t, why));
    CHECK(t.port == 80);
    CHECK(t.path == "/x");
    CHECK_FALSE(parse_request_target("*", 1, "h", t, why));
    CHECK_FALSE(parse_request_target("", 1, "h", t, why));
}

TEST_CASE("request head: only a lone chunked Transfer-Encoding is forwarded",
          "[unit][request_head]") {
    CHECK(transfer_encoding_acceptable(0, "", false));
    CHECK(transfer_encoding_acceptable(0, "", true));
    CHECK(transfer_encoding_acceptable(1, "chunked", false));
    CHECK(transfer_encoding_acceptable(1, "Chunked", false));
    CHECK_FALSE(transfer_encoding_acceptable(1, "chunked", true));
    CHECK_FALSE(transfer_encoding_acceptable(2, "chunked", false));
    CHECK_FALSE(transfer_encoding_acceptable(1, "gzip, chunked", false));
    CHECK_FALSE(transfer_encoding_acceptable(1, "identity", false));
}
