// App Service 2017 / Azure ML: GET {MSI_ENDPOINT}?api-version=2017-09-01&resource=... with a
// `secret` header; a user-assigned identity only by client id, spelled `clientid`.
#include "identity/sources/app_service_2017.hpp"

#include <boost/url/url.hpp>

#include "identity/sources/source_util.hpp"

namespace msiproxy {

namespace {

class app_service_2017_source final : public token_source {
  public:
    app_service_2017_source(boost::asio::any_io_executor ex, boost::asio::ssl::context& tls,
                            std::string endpoint, env_lookup env)
        : ex_(std::move(ex)), tls_(tls), endpoint_(std::move(endpoint)), env_(std::move(env)) {}

    std::string_view name() const override { return "app-service-2017"; }

    boost::asio::awaitable<fetch_outcome> fetch(const std::string& resource,
                                                const identity_selector& identity) override {
        // The 2017 API has no parameter for object or resource ids; sending one under another
        // name would silently return the wrong identity's token.
        if (!identity.object_id.empty() || !identity.resource_id.empty()) {
            co_return unsupported_identity(
                name(), identity,
                "the 2017-09-01 protocol (MSI_ENDPOINT) selects by client_id only");
        }
        boost::urls::url u(endpoint_);
        u.params().set("api-version", "2017-09-01");
        u.params().set("resource", resource);
        // No underscore: the spelling Azure ML's 2017 endpoint understands (MSAL's workaround).
        if (!identity.client_id.empty()) u.params().set("clientid", identity.client_id);
        fetch_request req;
        req.url = std::string(u.buffer());
        req.headers = {{"secret", env_("MSI_SECRET")}};
        co_return co_await fetch_token(ex_, tls_, std::move(req));
    }

  private:
    boost::asio::any_io_executor ex_;
    boost::asio::ssl::context& tls_;
    std::string endpoint_;
    env_lookup env_;
};

}  // namespace

std::unique_ptr<token_source> make_app_service_2017_source(boost::asio::any_io_executor ex,
                                                           boost::asio::ssl::context& tls,
                                                           std::string endpoint, env_lookup env) {
    return std::make_unique<app_service_2017_source>(std::move(ex), tls, std::move(endpoint),
                                                     std::move(env));
}

}  // namespace msiproxy
