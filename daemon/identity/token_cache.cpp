// Token cache: per-key refresher coroutines, single-flight waits, backoff and the endpoint
// rate limit. Policy numbers live in token.cpp (plan_refresh, backoff_delay).
#include "identity/token_cache.hpp"

#include <algorithm>
#include <atomic>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include "admin/metrics.hpp"
#include "common/time_format.hpp"
#include "log/logging.hpp"

namespace msiproxy {

namespace asio = boost::asio;
using namespace std::chrono_literals;
using asio::experimental::awaitable_operators::operator||;
using steady = std::chrono::steady_clock;
using std::chrono::duration_cast;
using std::chrono::milliseconds;
using std::chrono::seconds;

class token_slot {
  public:
    token_slot(asio::any_io_executor ex, token_key k) : key(std::move(k)), wake(ex), changed(ex) {
        // `changed` never expires: cancel() is the broadcast that wakes every waiter.
        changed.expires_at(steady::time_point::max());
    }
    token_key key;
    // Written on the cache's thread, read from any: the only state shared across threads.
    std::atomic<std::shared_ptr<const published_token>> published;
    // The rest belongs to the cache's thread.
    std::shared_ptr<const access_token> current;
    sys_time usable_until{};
    sys_time refresh_at{};
    std::optional<sys_time> last_refresh;
    std::optional<fetch_failure> last_failure;
    bool fetching = false;
    bool stopped = false;
    bool permanent = false;  // not retried until the next reload
    int attempt = 0;
    steady::time_point next_attempt{};
    steady::time_point last_invalidate{};
    asio::steady_timer wake;     // the refresher sleeps on it; cancel() = refresh now
    asio::steady_timer changed;  // requests wait on it for the in-flight fetch
};

token_cache::token_cache(asio::any_io_executor ex, std::shared_ptr<token_source> source,
                         metrics* stats, cache_options opts)
    : ex_(std::move(ex)),
      source_(std::move(source)),
      stats_(stats),
      opts_(opts),
      rng_(std::random_device{}()),
      slot_freed_(ex_) {
    slot_freed_.expires_at(steady::time_point::max());
}

token_cache::~token_cache() {
    shutdown();
}

double token_cache::jitter() {
    return std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
}

void token_cache::set_keys(const std::vector<token_key>& keys) {
    std::map<std::string, std::shared_ptr<entry>> next;
    for (const auto& k : keys) {
        const std::string id = k.id();
        if (next.contains(id)) continue;
        auto it = entries_.find(id);
        if (it != entries_.end()) {
            auto e = it->second;
            if (e->permanent) {
                // A reload is the operator's word that the identity may work now.
                e->permanent = false;
                e->attempt = 0;
                e->wake.cancel();
            }
            next.emplace(id, std::move(e));
            continue;
        }
        auto e = std::make_shared<entry>(ex_, k);
        next.emplace(id, e);
        asio::co_spawn(ex_, refresh_loop(e), [](std::exception_ptr p) {
            if (!p) return;
            try {
                std::rethrow_exception(p);
            } catch (const std::exception& ex) {
                spdlog::error("token refresher stopped: {}", ex.what());
            }
        });
    }
    for (auto& [id, e] : entries_) {
        if (!next.contains(id)) {
            e->stopped = true;
            e->wake.cancel();
            e->changed.cancel();
        }
    }
    entries_ = std::move(next);
}

asio::awaitable<fetch_outcome> token_cache::limited_fetch(const entry& e) {
    // At most max_concurrent_fetches at once and one start per min_fetch_spacing, whatever the
    // number of keys: IMDS answers 429 beyond 5 concurrent / 20 per second.
    while (in_flight_ >= opts_.max_concurrent_fetches && !shut_down_) {
        co_await slot_freed_.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    const auto now = steady::now();
    const auto start = std::max(now, next_slot_);
    next_slot_ = start + opts_.min_fetch_spacing;
    if (start > now) {
        asio::steady_timer t(ex_, start);
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    ++in_flight_;
    // The source's own I/O has timeouts; this bounds the whole attempt whatever the source
    // does (a hung azure-cli child, a trickling endpoint). The loser is cancelled.
    // (The outcome is boxed: awaitable_operators would flatten a bare std::variant into the
    // race's own variant.)
    struct boxed {
        fetch_outcome value;
    };
    auto fetch = [](token_source& src, const token_key& key) -> asio::awaitable<boxed> {
        boxed b;
        b.value = co_await src.fetch(key.resource, key.identity);
        co_return b;
    };
    asio::steady_timer limit(ex_, opts_.fetch_timeout);
    auto raced =
        co_await (fetch(*source_, e.key) || limit.async_wait(asio::as_tuple(asio::use_awaitable)));
    --in_flight_;
    fetch_outcome outcome =
        raced.index() == 0
            ? std::get<0>(std::move(raced)).value
            : fetch_outcome{fetch_failure{failure_kind::unreachable,
                                          "no answer from the identity endpoint within " +
                                              std::to_string(opts_.fetch_timeout.count()) + " ms",
                                          true, std::nullopt, 0}};
    slot_freed_.cancel();
    co_return outcome;
}

asio::awaitable<void> token_cache::refresh_loop(std::shared_ptr<entry> e) {
    const std::string& resource = e->key.resource;
    const std::string who = e->key.identity.describe();
    while (!e->stopped && !shut_down_) {
        e->fetching = true;
        auto outcome = co_await limited_fetch(*e);
        e->fetching = false;
        if (e->stopped || shut_down_) break;

        const auto now = std::chrono::system_clock::now();
        if (auto* tok = std::get_if<access_token>(&outcome)) {
            const bool repeated = e->current && e->current->value == tok->value;
            auto plan = plan_refresh(*tok, now, repeated, jitter());
            if (plan.usable_until <= now) {
                outcome = fetch_failure{failure_kind::bad_response,
                                        "the endpoint returned a token that expires at " +
                                            to_rfc3339(tok->expires_on) + ", too soon to use",
                                        true, std::nullopt, 200};
            } else {
                e->current = std::make_shared<const access_token>(std::move(*tok));
                e->usable_until = plan.usable_until;
                auto pub = std::make_shared<published_token>();
                pub->token = e->current;
                pub->usable_until = plan.usable_until;
                pub->bearer = "Bearer " + e->current->value;
                e->published.store(std::move(pub));
                e->refresh_at = plan.refresh_at;
                e->last_refresh = now;
                e->last_failure.reset();
                e->attempt = 0;
                if (stats_) {
                    stats_->token_refresh(resource, "success");
                    stats_->token_expiry(resource, std::chrono::duration<double>(
                                                       e->current->expires_on.time_since_epoch())
                                                       .count());
                }
                spdlog::info("token for {} ({}) from {}: expires {}, next refresh {}{}", resource,
                             who, source_->name(), to_rfc3339(e->current->expires_on),
                             to_rfc3339(plan.refresh_at),
                             repeated ? " (endpoint returned its cached token)" : "");
                e->changed.cancel();
                e->wake.expires_after(duration_cast<milliseconds>(plan.refresh_at - now));
                co_await e->wake.async_wait(asio::as_tuple(asio::use_awaitable));
                continue;
            }
        }

        auto& f = std::get<fetch_failure>(outcome);
        if (stats_) stats_->token_refresh(resource, "failure");
        e->last_failure = f;
        if (!f.retryable) {
            // Logged once: retrying cannot help until the operator assigns the identity or
            // fixes the config, and reloads.
            e->permanent = true;
            spdlog::error("token for {} ({}) from {}: {}: {}; not retrying until reload", resource,
                          who, source_->name(), to_string(f.kind), f.message);
            e->changed.cancel();
            e->wake.expires_at(steady::time_point::max());
        } else {
            auto delay = backoff_delay(e->attempt++, opts_.backoff_cap, jitter(), f.retry_after);
            e->next_attempt = steady::now() + delay;
            log_rate_limited(
                "token:" + e->key.id() + ":" + std::string(to_string(f.kind)), spdlog::level::warn,
                fmt::format("token for {} ({}) from {}: {}: {}; retrying in {} ms", resource, who,
                            source_->name(), to_string(f.kind), f.message, delay.count()));
            e->changed.cancel();
            e->wake.expires_after(delay);
        }
        co_await e->wake.async_wait(asio::as_tuple(asio::use_awaitable));
    }
    e->changed.cancel();
}

std::shared_ptr<token_slot> token_cache::slot(const token_key& key) const {
    auto it = entries_.find(key.id());
    return it == entries_.end() ? nullptr : it->second;
}

std::shared_ptr<const published_token> token_cache::peek(const token_slot& s, sys_time now) {
    auto pub = s.published.load(std::memory_order_acquire);
    return pub && now < pub->usable_until ? pub : nullptr;
}

asio::awaitable<token_cache::result> token_cache::get(std::shared_ptr<token_slot> s,
                                                      steady::time_point deadline) {
    if (!s) co_return result{nullptr, "no token is configured for this route", 5s};
    if (auto pub = peek(*s, std::chrono::system_clock::now())) co_return result{pub, {}, 0s};
    // Waiting touches the cache's own state: do it on the cache's thread.
    co_return co_await asio::co_spawn(ex_, wait_for_token(std::move(s), deadline),
                                      asio::use_awaitable);
}

asio::awaitable<token_cache::result> token_cache::wait_for_token(std::shared_ptr<entry> e,
                                                                 steady::time_point deadline) {
    for (;;) {
        const auto now = std::chrono::system_clock::now();
        if (auto pub = peek(*e, now)) co_return result{pub, {}, 0s};
        if (e->stopped || shut_down_) co_return result{nullptr, "msiproxy is shutting down", 5s};
        if (!e->fetching) {
            if (e->last_failure) {
                auto wait = e->permanent ? seconds(60)
                                         : duration_cast<seconds>(e->next_attempt - steady::now());
                co_return result{
                    nullptr,
                    std::string(to_string(e->last_failure->kind)) + ": " + e->last_failure->message,
                    std::max(wait, seconds(1))};
            }
            // The token went stale before its scheduled refresh: refresh now.
            e->wake.cancel();
        }
        if (steady::now() >= deadline) {
            co_return result{nullptr, "timed out waiting for the identity endpoint", 1s};
        }
        asio::steady_timer timeout(ex_, deadline);
        co_await (e->changed.async_wait(asio::as_tuple(asio::use_awaitable)) ||
                  timeout.async_wait(asio::as_tuple(asio::use_awaitable)));
    }
}

void token_cache::invalidate(const token_key& key, const std::string& why) {
    asio::post(ex_, [this, key, why] { invalidate_now(key, why); });
}

void token_cache::invalidate_now(const token_key& key, const std::string& why) {
    if (shut_down_) return;
    auto it = entries_.find(key.id());
    if (it == entries_.end()) return;
    auto& e = it->second;
    const auto now = steady::now();
    if (e->fetching || e->permanent || now - e->last_invalidate < 60s) return;
    e->last_invalidate = now;
    spdlog::warn("token for {} ({}) rejected by the upstream ({}); refreshing", key.resource,
                 key.identity.describe(), why);
    e->wake.cancel();
}

std::vector<token_status> token_cache::status() const {
    std::vector<token_status> out;
    const auto now = std::chrono::system_clock::now();
    for (const auto& [id, e] : entries_) {
        token_status s;
        s.identity = e->key.identity.describe();
        s.resource = e->key.resource;
        s.usable = e->current && now < e->usable_until;
        if (s.usable) {
            s.state = e->fetching ? "refreshing" : "valid";
        } else if (e->fetching || (!e->current && !e->last_failure)) {
            s.state = "pending";
        } else if (e->last_failure) {
            s.state = "failed";
        } else {
            s.state = "expired";
        }
        if (e->current) {
            s.expires_on = e->current->expires_on;
            s.refresh_at = e->refresh_at;
        }
        s.last_refresh = e->last_refresh;
        if (e->last_failure) s.last_error = e->last_failure->message;
        out.push_back(std::move(s));
    }
    return out;
}

void token_cache::shutdown() {
    if (shut_down_) return;
    shut_down_ = true;
    for (auto& [id, e] : entries_) {
        e->stopped = true;
        e->wake.cancel();
        e->changed.cancel();
    }
    slot_freed_.cancel();
}

}  // namespace msiproxy
