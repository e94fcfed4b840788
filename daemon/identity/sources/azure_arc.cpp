// Arc: GET ?api-version=2020-06-01 -> 401 naming a key file in WWW-Authenticate; the path is
// validated, the key read, and the GET repeated with `Authorization: Basic <key>`.
#include "identity/sources/azure_arc.hpp"

#include <algorithm>
#include <cctype>
#include <cerrno>

#include <boost/url/url.hpp>
#include <nlohmann/json.hpp>

#include "identity/sources/source_util.hpp"

namespace msiproxy {

namespace {

constexpr std::size_t max_key_bytes = 4096;

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
        s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t'))
        s.remove_suffix(1);
    return s;
}

fetch_failure challenge_failure(const std::string& where, std::string message) {
    // The agent, or whatever answers on its port, pointed us somewhere we will not read.
    fetch_failure f;
    f.kind = failure_kind::bad_response;
    f.http_status = 401;
    f.message = where + ": " + std::move(message);
    return f;
}

// The key file named by `Basic realm=<path>`, once the path passes every check; else an error.
bool key_path_from_challenge(std::string_view challenge, const std::string& key_dir,
                             std::string& path, std::string& error) {
    if (std::count(challenge.begin(), challenge.end(), '=') != 1) {
        error = "WWW-Authenticate must be `Basic realm=<key file>` with exactly one '='";
        return false;
    }
    auto eq = challenge.find('=');
    if (!iequals(trim(challenge.substr(0, eq)), "Basic realm")) {
        error = "WWW-Authenticate is not a `Basic realm=` challenge";
        return false;
    }
    std::string_view p = trim(challenge.substr(eq + 1));
    auto slash = p.rfind('/');
    if (slash == std::string_view::npos || p.substr(0, slash) != key_dir) {
        error = "the challenge's key file is not in " + key_dir;
        return false;
    }
    std::string_view file = p.substr(slash + 1);
    if (file.size() <= 4 || !file.ends_with(".key")) {
        error = "the challenge's key file name does not end in .key";
        return false;
    }
    path = std::string(p);
    return true;
}

// The client_id a token response names, or "".
std::string echoed_client_id(const std::string& body) {
    auto j = nlohmann::json::parse(body, nullptr, false);
    if (!j.is_object()) return {};
    auto it = j.find("client_id");
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

class azure_arc_source final : public token_source {
  public:
    azure_arc_source(boost::asio::any_io_executor ex, boost::asio::ssl::context& tls,
                     std::string endpoint, std::string key_dir)
        : ex_(std::move(ex)),
          tls_(tls),
          endpoint_(std::move(endpoint)),
          key_dir_(std::move(key_dir)) {}

    std::string_view name() const override { return "azure-arc"; }

    boost::asio::awaitable<fetch_outcome> fetch(const std::string& resource,
                                                const identity_selector& identity) override {
        boost::urls::url u(endpoint_);
        u.params().set("api-version", "2020-06-01");
        u.params().set("resource", resource);
        // Newer agents honour these; IMDS spelling (msi_res_id), as Arc ignores mi_res_id.
        if (!identity.client_id.empty()) u.params().set("client_id", identity.client_id);
        if (!identity.object_id.empty()) u.params().set("object_id", identity.object_id);
        if (!identity.resource_id.empty()) u.params().set("msi_res_id", identity.resource_id);
        const std::string where = endpoint_label(endpoint_);

        fetch_request challenge_req;
        challenge_req.url = std::string(u.buffer());
        challenge_req.headers = {{"Metadata", "true"}};
        fetch_request token_req = challenge_req;
        auto [ec, res] = co_await http_fetch(ex_, tls_, std::move(challenge_req));
        if (ec) co_return response_outcome(where, ec, res);
        if (res.status != 401) {
            fetch_failure f;
            if (res.status >= 200 && res.status <= 299) {
                f.kind = failure_kind::bad_response;
                f.http_status = res.status;
                f.message = "HTTP " + std::to_string(res.status);
            } else {
                f = classify_http_failure(res.status, res.body, res.header("retry-after"));
            }
            f.message = where + ": expected HTTP 401 with a key challenge, got " + f.message;
            co_return f;
        }

        std::string path, error;
        if (!key_path_from_challenge(res.header("www-authenticate"), key_dir_, path, error)) {
            co_return challenge_failure(where, error);
        }
        // A blocking read on the I/O thread, acceptable here: a local file of at most 4 KiB,
        // its type and size checked on the open descriptor before reading; no symlinks.
        std::string key;
        int open_errno = 0;
        if (!read_small_file(path, max_key_bytes, key, error, false, &open_errno)) {
            fetch_failure f = challenge_failure(where, "Arc key file: " + error);
            if (open_errno == EACCES) {
                // Reading the agent's keys needs privileges the operator has to grant.
                f.kind = failure_kind::endpoint_error;
                f.retryable = false;
                f.message += " (msiproxy needs read access to " + key_dir_ + ")";
            }
            co_return f;
        }
        if (key.empty()) co_return challenge_failure(where, "Arc key file " + path + " is empty");

        // The key goes verbatim, not base64-encoded again.
        token_req.headers.emplace_back("Authorization", "Basic " + key);
        auto [ec2, res2] = co_await http_fetch(ex_, tls_, std::move(token_req));
        auto out = response_outcome(where, ec2, res2);
        if (std::holds_alternative<access_token>(out) && !identity.client_id.empty()) {
            // An old agent ignores the selector and returns the system-assigned identity's token:
            // fail closed unless the answer names the client id we asked for.
            const std::string echoed = echoed_client_id(res2.body);
            if (!iequals(echoed, identity.client_id)) {
                fetch_failure f;
                f.kind = failure_kind::identity_not_found;
                f.retryable = false;
                f.http_status = res2.status;
                f.message =
                    where +
                    ": the Arc agent did not confirm the requested user-assigned identity " +
                    identity.describe() + " (its answer names client_id \"" + echoed +
                    "\"; agents before user-assigned support ignore the request)";
                co_return f;
            }
        }
        co_return out;
    }

  private:
    boost::asio::any_io_executor ex_;
    boost::asio::ssl::context& tls_;
    std::string endpoint_;
    std::string key_dir_;
};

}  // namespace

std::unique_ptr<token_source> make_azure_arc_source(boost::asio::any_io_executor ex,
                                                    boost::asio::ssl::context& tls,
                                                    std::string endpoint,
                                                    std::string key_directory) {
    return std::make_unique<azure_arc_source>(std::move(ex), tls, std::move(endpoint),
                                              std::move(key_directory));
}

}  // namespace msiproxy
