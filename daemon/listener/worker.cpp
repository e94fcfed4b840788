// Building a config generation: router, token keys and destination policies.
#include "listener/worker.hpp"

namespace msiproxy {

std::vector<token_key> route_token_keys(const config& cfg, const env_lookup& env) {
    std::vector<token_key> keys;
    keys.reserve(cfg.routes.size());
    for (const auto& r : cfg.routes) {
        keys.push_back(
            token_key{effective_identity(r.identity, cfg.identity.selector, env), r.resource});
    }
    return keys;
}

runtime::runtime(config c, const env_lookup& env, std::vector<boost::asio::ip::tcp::endpoint> own,
                 const token_cache& tokens)
    : cfg(std::move(c)), routes(cfg.routes), route_keys(route_token_keys(cfg, env)) {
    route_slots.reserve(route_keys.size());
    for (const auto& k : route_keys)
        route_slots.push_back(tokens.slot(k));
    route_policy.forbidden = own;
    forward_policy.forbidden = std::move(own);
    forward_policy.forbid_link_local = true;
    forward_policy.forbid_private = cfg.proxy.deny_private;
}

}  // namespace msiproxy
