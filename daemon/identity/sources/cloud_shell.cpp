// Cloud Shell: POST {MSI_ENDPOINT} with the form `resource=...` and `Metadata: true`; only the
// signed-in user's identity exists, so user-assigned selectors are refused.
#include "identity/sources/cloud_shell.hpp"

#include "identity/sources/source_util.hpp"

namespace msiproxy {

namespace {

class cloud_shell_source final : public token_source {
  public:
    cloud_shell_source(boost::asio::any_io_executor ex, boost::asio::ssl::context& tls,
                       std::string endpoint)
        : ex_(std::move(ex)), tls_(tls), endpoint_(std::move(endpoint)) {}

    std::string_view name() const override { return "cloud-shell"; }

    boost::asio::awaitable<fetch_outcome> fetch(const std::string& resource,
                                                const identity_selector& identity) override {
        if (!identity.empty()) {
            co_return unsupported_identity(name(), identity,
                                           "Cloud Shell only issues tokens for the signed-in user");
        }
        fetch_request req;
        req.method = "POST";
        req.url = endpoint_;
        req.headers = {{"Metadata", "true"}, {"Content-Type", "application/x-www-form-urlencoded"}};
        req.body = form_urlencode({{"resource", resource}});
        co_return co_await fetch_token(ex_, tls_, std::move(req));
    }

  private:
    boost::asio::any_io_executor ex_;
    boost::asio::ssl::context& tls_;
    std::string endpoint_;
};

}  // namespace

std::unique_ptr<token_source> make_cloud_shell_source(boost::asio::any_io_executor ex,
                                                      boost::asio::ssl::context& tls,
                                                      std::string endpoint) {
    return std::make_unique<cloud_shell_source>(std::move(ex), tls, std::move(endpoint));
}

}  // namespace msiproxy
