// The token cache: one entry per (identity, resource), each kept fresh by its own refresher
// coroutine ahead of expiry, so that requests normally read a cached token with no I/O.
// Misses wait on the single in-flight fetch; failures back off; the endpoint is rate-limited.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/steady_timer.hpp>

#include "config/config.hpp"
#include "identity/token.hpp"
#include "identity/token_source.hpp"
#include "identity/token_status.hpp"

namespace msiproxy {

class metrics;

struct token_key {
    identity_selector identity;
    std::string resource;
    std::string id() const { return identity.describe() + '\n' + resource; }
};

struct cache_options {
    std::chrono::milliseconds backoff_cap{60000};
    std::chrono::milliseconds fetch_timeout{10000};   // one attempt, whatever the source does
    int max_concurrent_fetches = 4;                   // IMDS allows 5 concurrent per VM
    std::chrono::milliseconds min_fetch_spacing{60};  // and 20 requests/s
};

// What requests read without locks or I/O: the token, until when it may be sent, and the
// default header value, formatted once per refresh rather than once per request.
struct published_token {
    std::shared_ptr<const access_token> token;
    sys_time usable_until{};
    std::string bearer;  // "Bearer <token>"
};

// One cached (identity, resource); opaque outside the cache. Requests hold it through their
// config generation, so a lookup is never needed on the hot path.
class token_slot;

// Members run on the cache's executor (the first I/O thread), except peek(), which any thread
// may call, and get(), which moves to that executor itself when it has to wait.
class token_cache {
  public:
    token_cache(boost::asio::any_io_executor ex, std::shared_ptr<token_source> source,
                metrics* stats, cache_options opts = {});
    ~token_cache();
    token_cache(const token_cache&) = delete;
    token_cache& operator=(const token_cache&) = delete;

    // Makes these the cached keys: new ones start fetching at once (prefetch), dropped ones
    // stop. Called at start and on reload. A reload also clears permanent failures.
    void set_keys(const std::vector<token_key>& keys);

    // The slot of a cached key, nullptr when set_keys() did not name it.
    std::shared_ptr<token_slot> slot(const token_key& key) const;

    // The published token when it may be sent at `now`, else nullptr. Any thread; no I/O.
    static std::shared_ptr<const published_token> peek(const token_slot& s, sys_time now);

    struct result {
        std::shared_ptr<const published_token> token;  // set on success
        std::string reason;                            // why not, for the 503 body and logs
        std::chrono::seconds retry_after{1};
    };
    // A token usable now: at once when one is published; otherwise waits for the in-flight
    // fetch until `deadline`. Never returns a token past its usable time. Any thread.
    boost::asio::awaitable<result> get(std::shared_ptr<token_slot> s,
                                       std::chrono::steady_clock::time_point deadline);

    // Asks for a new token for `key` after the upstream rejected the current one, at most once
    // per minute per key. Any thread (it posts to the cache's executor). The current token
    // stays in use until the new one arrives: the rejection may be the upstream's mistake.
    void invalidate(const token_key& key, const std::string& why);

    std::vector<token_status> status() const;
    const token_source& source() const { return *source_; }
    // Stops every refresher; waiting requests get a failure.
    void shutdown();

  private:
    using entry = token_slot;
    boost::asio::awaitable<result> wait_for_token(std::shared_ptr<entry> e,
                                                  std::chrono::steady_clock::time_point deadline);
    boost::asio::awaitable<void> refresh_loop(std::shared_ptr<entry> e);
    void invalidate_now(const token_key& key, const std::string& why);
    boost::asio::awaitable<fetch_outcome> limited_fetch(const entry& e);
    double jitter();

    boost::asio::any_io_executor ex_;
    std::shared_ptr<token_source> source_;
    metrics* stats_;
    cache_options opts_;
    std::map<std::string, std::shared_ptr<entry>> entries_;
    std::mt19937_64 rng_;
    // Endpoint rate limit state.
    int in_flight_ = 0;
    std::chrono::steady_clock::time_point next_slot_{};
    boost::asio::steady_timer slot_freed_;
    bool shut_down_ = false;
};

}  // namespace msiproxy
