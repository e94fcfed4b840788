// Building a config generation: router, token keys and destination policies.
#include "listener/worker.hpp"

namespace msiproxy {

runtime::runtime(config c, const env_lookup& env, std::vector<boost::asio::ip::tcp::endpoint> own)
    : cfg(std::move(c)), routes(cfg.routes) {
    route_keys.reserve(cfg.routes.size());
    for (const auto& r : cfg.routes) {
        route_keys.push_back(token_key{effective_identity(r.identity, cfg.identity.selector, env),
                                       r.resource});
    }
    route_policy.forbidden = own;
    forward_policy.forbidden = std::move(own);
    forward_policy.forbid_link_local = true;
}

}  // namespace msiproxy
