// Workload identity: POST {authority}{tenant}/oauth2/v2.0/token with grant_type=
// client_credentials and the federated token as client_assertion, re-read on every fetch.
#include "identity/sources/workload_identity.hpp"

#include <stdexcept>

#include <nlohmann/json.hpp>

#include "identity/sources/source_util.hpp"

namespace msiproxy {

namespace {

// Projected service-account tokens are a few KiB; anything far larger is not one.
constexpr std::size_t max_assertion_bytes = 64 * 1024;

bool plain_tenant(std::string_view t) {
    if (t.empty()) return false;
    for (char c : t) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.';
        if (!ok) return false;
    }
    return true;
}

class workload_identity_source final : public token_source {
  public:
    workload_identity_source(boost::asio::any_io_executor ex, boost::asio::ssl::context& tls,
                             workload_identity_settings s, std::string token_url)
        : ex_(std::move(ex)), tls_(tls), s_(std::move(s)), token_url_(std::move(token_url)) {}

    std::string_view name() const override { return "workload-identity"; }

    boost::asio::awaitable<fetch_outcome> fetch(const std::string& resource,
                                                const identity_selector& identity) override {
        if (!identity.object_id.empty() || !identity.resource_id.empty()) {
            co_return unsupported_identity(
                name(), identity, "workload identity names the application by client_id only");
        }
        const std::string& client_id =
            identity.client_id.empty() ? s_.client_id : identity.client_id;
        const std::string where = endpoint_label(token_url_);
        if (client_id.empty()) {
            fetch_failure f = unsupported_identity(name(), identity, "");
            f.message =
                "workload identity needs a client id: set AZURE_CLIENT_ID or the route's "
                "client_id";
            co_return f;
        }
        // Kubernetes rotates the file; the assertion in it is only valid for a while, so read it
        // for every request. A blocking read of a small local (tmpfs) file is acceptable here.
        std::string assertion, error;
        if (!read_small_file(s_.token_file, max_assertion_bytes, assertion, error)) {
            fetch_failure f;
            f.kind = failure_kind::bad_response;
            f.message = "federated token file: " + error;
            co_return f;
        }
        while (!assertion.empty() &&
               (assertion.back() == '\n' || assertion.back() == '\r' || assertion.back() == ' ')) {
            assertion.pop_back();
        }
        if (assertion.empty()) {
            fetch_failure f;
            f.kind = failure_kind::bad_response;
            f.message = "federated token file " + s_.token_file + " is empty";
            co_return f;
        }

        fetch_request req;
        req.method = "POST";
        req.url = token_url_;
        req.headers = {{"Content-Type", "application/x-www-form-urlencoded"},
                       {"Accept", "application/json"}};
        req.body = form_urlencode({
            {"grant_type", "client_credentials"},
            {"client_assertion_type", "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
            {"client_id", client_id},
            {"scope", resource + "/.default"},
            {"client_assertion", assertion},
        });
        auto [ec, res] = co_await http_fetch(ex_, tls_, std::move(req));
        if (!ec && (res.status < 200 || res.status > 299)) {
            fetch_failure f =
                classify_entra_failure(res.status, res.body, res.header("retry-after"));
            f.message = where + ": " + f.message;
            co_return f;
        }
        co_return response_outcome(where, ec, res);
    }

  private:
    boost::asio::any_io_executor ex_;
    boost::asio::ssl::context& tls_;
    workload_identity_settings s_;
    std::string token_url_;
};

}  // namespace

fetch_failure classify_entra_failure(unsigned status, std::string_view body,
                                     std::string_view retry_after_header) {
    fetch_failure f = classify_http_failure(status, body, retry_after_header);
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_object()) return f;
    auto err = j.find("error");
    if (err == j.end() || !err->is_string()) return f;
    const std::string code = err->get<std::string>();
    // Entra appends trace and correlation ids and a timestamp on further lines: keep the first.
    std::string desc;
    if (auto d = j.find("error_description"); d != j.end() && d->is_string()) {
        desc = d->get<std::string>();
        desc = desc.substr(0, desc.find_first_of("\r\n"));
    }
    f.message = "HTTP " + std::to_string(status) + ": " + code + (desc.empty() ? "" : ": " + desc);
    if (status == 429 || status >= 500 || code == "temporarily_unavailable") {
        f.kind = status == 429 ? failure_kind::throttled : failure_kind::endpoint_error;
        f.retryable = true;
    } else if (code == "invalid_grant") {
        // Typically an expired or not yet valid assertion: the next rotation of the token file
        // fixes it, so keep trying with backoff.
        f.kind = failure_kind::endpoint_error;
        f.retryable = true;
    } else {
        // invalid_client, unauthorized_client, invalid_scope, invalid_request...: the app
        // registration or federation must change first.
        f.kind = failure_kind::identity_not_found;
        f.retryable = false;
    }
    return f;
}

std::unique_ptr<token_source> make_workload_identity_source(boost::asio::any_io_executor ex,
                                                            boost::asio::ssl::context& tls,
                                                            workload_identity_settings s) {
    if (s.token_file.empty()) {
        throw std::runtime_error("workload identity needs AZURE_FEDERATED_TOKEN_FILE");
    }
    if (!plain_tenant(s.tenant_id)) {
        throw std::runtime_error(
            "workload identity needs AZURE_TENANT_ID, a tenant id or domain name (got \"" +
            s.tenant_id + "\")");
    }
    std::string url = s.endpoint;
    if (url.empty()) {
        std::string authority =
            s.authority_host.empty() ? entra_default_authority : s.authority_host;
        // The client assertion and the token travel here: never over cleartext.
        if (!authority.starts_with("https://")) {
            throw std::runtime_error("AZURE_AUTHORITY_HOST must be an https:// URL (got \"" +
                                     authority + "\")");
        }
        if (!authority.ends_with("/")) authority += '/';
        url = authority + s.tenant_id +
              (s.tenant_id == "adfs" ? "/oauth2/token" : "/oauth2/v2.0/token");
    }
    return std::make_unique<workload_identity_source>(std::move(ex), tls, std::move(s),
                                                      std::move(url));
}

}  // namespace msiproxy
