// Fuzz target: every parser of a token endpoint's answer: the JSON body, expiry date formats and
// the classification of an error answer (status and Retry-After taken from the input too).
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "identity/token.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    const msiproxy::sys_time now{std::chrono::seconds(1'800'000'000)};
    auto outcome = msiproxy::parse_token_response(in, now);
    if (const auto* t = std::get_if<msiproxy::access_token>(&outcome)) {
        // A parsed token feeds the refresh planner: it must cope with any expiry.
        (void)msiproxy::plan_refresh(*t, now, false, 0.5);
        (void)msiproxy::plan_refresh(*t, now, true, 0.999);
    }
    (void)msiproxy::parse_expires_on(in);

    // The first two bytes pick the status, the next line is the Retry-After header, the rest is
    // the body.
    unsigned status =
        size >= 2 ? 100u + (static_cast<unsigned>(data[0]) << 8 | data[1]) % 500u : 500u;
    std::string_view rest = size >= 2 ? in.substr(2) : std::string_view{};
    std::string_view retry_after;
    if (auto nl = rest.find('\n'); nl != std::string_view::npos) {
        retry_after = rest.substr(0, nl);
        rest = rest.substr(nl + 1);
    }
    auto f = msiproxy::classify_http_failure(status, rest, retry_after);
    (void)msiproxy::backoff_delay(3, std::chrono::minutes(5), 0.5, f.retry_after);
    return 0;
}
