// A fake of the Azure IMDS token endpoint (plain HTTP on 127.0.0.1:0, own thread): issues
// recognisable tokens, records every request, and fails on demand, changeable mid-test.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "support/http_record.hpp"
#include "support/server_thread.hpp"

namespace msiproxy::test {

// How the fake answers a well-formed token request. Failure modes win over success.
struct identity_behaviour {
    std::string token{};                   // "" = "fake-token-<n>", n counting issued tokens from 1
    std::chrono::seconds lifetime{86399};  // expires_in, and expires_on = now + lifetime
    // Failure: when fail_status != 0 answer it with fail_body (and Retry-After when set).
    unsigned fail_status = 0;
    std::string fail_body{};
    std::string retry_after{};
    bool garbage = false;                // 200 with a body that is not JSON
    std::chrono::milliseconds delay{0};  // before answering anything
    // 200 with a body of this many bytes of JSON-looking filler, streamed with Content-Length
    // (never held in memory); with endless_body, a chunked body of filler that never ends.
    // The connection is closed after it.
    std::uint64_t junk_body_bytes = 0;
    bool endless_body = false;
};

// Serves GET /metadata/identity/oauth2/token?api-version=...&resource=...[&client_id=...].
// As IMDS does: a request without "Metadata: true" gets 400; a missing resource gets 400; any
// other path 404. The JSON answer carries strings for the numbers, as IMDS does.
// Thread safety: every public member may be called from any thread at any time.
class fake_identity {
  public:
    fake_identity();  // starts listening at once
    ~fake_identity();
    fake_identity(const fake_identity&) = delete;
    fake_identity& operator=(const fake_identity&) = delete;

    std::uint16_t port() const { return server_.port(); }
    // "http://127.0.0.1:PORT/metadata/identity/oauth2/token"
    std::string url() const;

    // Behaviour setters; they apply to requests that arrive afterwards.
    void set_behaviour(identity_behaviour b);
    identity_behaviour behaviour() const;
    void set_token(std::string token);
    void set_lifetime(std::chrono::seconds lifetime);
    void set_delay(std::chrono::milliseconds delay);
    void fail_with(unsigned status, std::string body = {}, std::string retry_after = {});
    void answer_garbage(bool on = true);
    void answer_junk(std::uint64_t body_bytes);  // 0 = off
    void answer_endless(bool on = true);
    void succeed();  // clears fail_status, garbage, junk, endless and delay

    // Junk or endless answers whose writing stopped because the client hung up, and the
    // filler bytes written in all of them.
    std::uint64_t junk_answers_cut() const { return junk_cut_.load(); }
    std::uint64_t junk_bytes_sent() const { return junk_sent_.load(); }

    const request_log& requests() const { return log_; }
    std::size_t request_count() const { return log_.size(); }
    bool wait_for_requests(std::size_t n,
                           std::chrono::milliseconds timeout = std::chrono::seconds(10)) const {
        return log_.wait_for(n, timeout);
    }
    // Tokens handed out, in order; and the last one handed out for a resource (nullopt: none).
    std::vector<std::string> issued_tokens() const;
    std::optional<std::string> token_for(const std::string& resource) const;
    // When a token handed out expires, on the steady clock (nullopt: not one of ours).
    std::optional<std::chrono::steady_clock::time_point> expiry_of(const std::string& token) const;

    void stop() { server_.stop(); }

  private:
    struct answer {
        unsigned status;
        std::string content_type;
        std::string body;
        std::string retry_after;
        std::chrono::milliseconds delay;
        std::uint64_t junk_bytes = 0;
        bool endless = false;
    };
    boost::asio::awaitable<void> serve(boost::asio::ip::tcp::socket socket, std::uint64_t id);
    answer decide(const recorded_request& req);

    mutable std::mutex mutex_;
    identity_behaviour behaviour_;
    std::uint64_t counter_ = 0;
    std::vector<std::string> issued_;
    std::map<std::string, std::chrono::steady_clock::time_point> expiry_;
    std::map<std::string, std::string> by_resource_;
    request_log log_;
    std::atomic<std::uint64_t> junk_cut_{0};
    std::atomic<std::uint64_t> junk_sent_{0};
    server_thread server_;  // last: stopped and destroyed first
};

}  // namespace msiproxy::test
