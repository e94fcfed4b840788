// A managed-identity token source (IMDS, App Service, Arc, ...): one fetch per call, no caching,
// no retries (the cache owns both). Implementations live in identity/sources/.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <string_view>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/ssl/context.hpp>

#include "config/config.hpp"
#include "identity/token.hpp"

namespace msiproxy {

class token_source {
  public:
    virtual ~token_source() = default;
    // "imds", "app-service", ...: for logs and `msiproxy token`.
    virtual std::string_view name() const = 0;
    // One request to the endpoint for `resource` as `identity` (empty = the source's default).
    virtual boost::asio::awaitable<fetch_outcome> fetch(const std::string& resource,
                                                        const identity_selector& identity) = 0;
};

// Reads an environment variable; tests substitute their own.
using env_lookup = std::function<std::string(const char*)>;
env_lookup process_env();

// Whether a file exists (the Arc agent's binary); tests substitute their own.
using file_probe = std::function<bool(const char*)>;
file_probe process_files();

struct source_choice {
    std::unique_ptr<token_source> source;
    std::string why;  // one line for the log: which source and what in the environment chose it
};

// Builds the configured source; for `auto`, detects it from the environment in the Azure SDKs'
// order (azure-identity.md section 1.1). Throws std::runtime_error when the configured source
// cannot work here. No I/O besides `exists`. [identity] endpoint overrides every source's URL.
source_choice make_token_source(const identity_config& cfg, const env_lookup& env,
                                boost::asio::any_io_executor ex, boost::asio::ssl::context& tls);
source_choice make_token_source(const identity_config& cfg, const env_lookup& env,
                                boost::asio::any_io_executor ex, boost::asio::ssl::context& tls,
                                const file_probe& exists);

// The identity a route's tokens are requested for: the route's selector, else [identity]'s,
// else AZURE_CLIENT_ID as a client_id, else the system-assigned identity.
identity_selector effective_identity(const identity_selector& route_sel,
                                     const identity_selector& global_sel, const env_lookup& env);

}  // namespace msiproxy
