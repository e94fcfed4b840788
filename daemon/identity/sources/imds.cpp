// IMDS: GET ?api-version=2018-02-01&resource=...[&client_id|object_id|msi_res_id] with the
// lower-case `Metadata: true` header IMDS requires as an SSRF guard.
#include "identity/sources/imds.hpp"

#include <boost/url/parse.hpp>
#include <boost/url/url.hpp>

#include "identity/sources/source_util.hpp"

namespace msiproxy {

namespace {

class imds_source final : public token_source {
  public:
    imds_source(boost::asio::any_io_executor ex, boost::asio::ssl::context& tls,
                std::string endpoint)
        : ex_(std::move(ex)), tls_(tls), endpoint_(std::move(endpoint)) {}

    std::string_view name() const override { return "imds"; }

    boost::asio::awaitable<fetch_outcome> fetch(const std::string& resource,
                                                const identity_selector& identity) override {
        boost::urls::url u(endpoint_);
        u.params().set("api-version", "2018-02-01");
        u.params().set("resource", resource);
        if (!identity.client_id.empty()) u.params().set("client_id", identity.client_id);
        if (!identity.object_id.empty()) u.params().set("object_id", identity.object_id);
        if (!identity.resource_id.empty()) u.params().set("msi_res_id", identity.resource_id);
        fetch_request req;
        req.url = std::string(u.buffer());
        req.headers = {{"Metadata", "true"}};
        co_return co_await fetch_token(ex_, tls_, std::move(req));
    }

  private:
    boost::asio::any_io_executor ex_;
    boost::asio::ssl::context& tls_;
    std::string endpoint_;
};

}  // namespace

std::unique_ptr<token_source> make_imds_source(boost::asio::any_io_executor ex,
                                               boost::asio::ssl::context& tls,
                                               std::string endpoint) {
    return std::make_unique<imds_source>(std::move(ex), tls, std::move(endpoint));
}

}  // namespace msiproxy
