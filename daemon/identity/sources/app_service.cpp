// App Service 2019-08-01: GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource=... with
// X-IDENTITY-HEADER; user-assigned ids as client_id / principal_id / mi_res_id.
#include "identity/sources/app_service.hpp"

#include <boost/url/url.hpp>

#include "identity/sources/source_util.hpp"

namespace msiproxy {

namespace {

class app_service_source final : public token_source {
  public:
    app_service_source(boost::asio::any_io_executor ex, boost::asio::ssl::context& tls,
                       std::string endpoint, env_lookup env)
        : ex_(std::move(ex)), tls_(tls), endpoint_(std::move(endpoint)), env_(std::move(env)) {}

    std::string_view name() const override { return "app-service"; }

    boost::asio::awaitable<fetch_outcome> fetch(const std::string& resource,
                                                const identity_selector& identity) override {
        boost::urls::url u(endpoint_);
        u.params().set("api-version", "2019-08-01");
        u.params().set("resource", resource);
        if (!identity.client_id.empty()) u.params().set("client_id", identity.client_id);
        if (!identity.object_id.empty()) u.params().set("principal_id", identity.object_id);
        if (!identity.resource_id.empty()) u.params().set("mi_res_id", identity.resource_id);
        fetch_request req;
        req.url = std::string(u.buffer());
        req.headers = {{"X-IDENTITY-HEADER", env_("IDENTITY_HEADER")}};
        co_return co_await fetch_token(ex_, tls_, std::move(req));
    }

  private:
    boost::asio::any_io_executor ex_;
    boost::asio::ssl::context& tls_;
    std::string endpoint_;
    env_lookup env_;
};

}  // namespace

std::unique_ptr<token_source> make_app_service_source(boost::asio::any_io_executor ex,
                                                      boost::asio::ssl::context& tls,
                                                      std::string endpoint, env_lookup env) {
    return std::make_unique<app_service_source>(std::move(ex), tls, std::move(endpoint),
                                                std::move(env));
}

}  // namespace msiproxy
