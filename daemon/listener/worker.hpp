// What sessions share on one I/O thread: the current config generation (swapped on reload),
// the upstream pool, the token cache, metrics, and the live sessions for drain/stop.
#pragma once

#include <memory>
#include <set>
#include <string>
#include <vector>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "config/config.hpp"
#include "identity/token_cache.hpp"
#include "router/router.hpp"
#include "upstream/pool.hpp"

namespace msiproxy {

class metrics;

// One config generation, immutable once built. Requests hold a shared_ptr for their whole
// life, so a reload never changes a request in flight.
// The token keys a config's routes need, parallel to cfg.routes.
std::vector<token_key> route_token_keys(const config& cfg, const env_lookup& env);

struct runtime {
    // own: the proxy's and admin's bound endpoints, which no request may be sent back to.
    // The token keys of `c` must already be set in `tokens` (slots are looked up once here).
    runtime(config c, const env_lookup& env, std::vector<boost::asio::ip::tcp::endpoint> own,
            const token_cache& tokens);
    runtime(const runtime&) = delete;
    runtime& operator=(const runtime&) = delete;

    config cfg;
    router routes;                                         // points into cfg.routes
    std::vector<token_key> route_keys;                     // parallel to cfg.routes
    std::vector<std::shared_ptr<token_slot>> route_slots;  // parallel to cfg.routes
    destination_policy route_policy;    // for routed upstreams: no loops to ourselves
    destination_policy forward_policy;  // unmatched / CONNECT: also no link-local (IMDS)

    const token_key& key_of(const route& r) const {
        return route_keys[static_cast<std::size_t>(&r - cfg.routes.data())];
    }
    const std::shared_ptr<token_slot>& slot_of(const route& r) const {
        return route_slots[static_cast<std::size_t>(&r - cfg.routes.data())];
    }
};

// A live downstream connection, as the worker sees it.
class session_handle {
  public:
    virtual ~session_handle() = default;
    // Finish the request in flight (if any), then close; an idle connection closes now.
    virtual void drain() = 0;
    // Close everything now.
    virtual void abort() = 0;
};

struct worker_context {
    boost::asio::any_io_executor ex;
    std::shared_ptr<const runtime> current;
    upstream_pool* pool = nullptr;
    token_cache* tokens = nullptr;
    metrics* stats = nullptr;
    bool draining = false;
    std::set<session_handle*> sessions;
    // Relay buffers of finished requests, for the next ones (see session.cpp).
    std::vector<std::unique_ptr<char[]>> spare_chunks;
    std::vector<std::unique_ptr<std::string>> spare_heads;
};

}  // namespace msiproxy
