// Token sources against an in-process fake endpoint: each source's request shape and response
// handling, Arc's key file checks, the Service Fabric pin, az as a child process, auto detection.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include <sys/stat.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>

#include "common/error.hpp"
#include "config/config.hpp"
#include "identity/http_fetch.hpp"
#include "identity/jwt.hpp"
#include "identity/sources/app_service.hpp"
#include "identity/sources/app_service_2017.hpp"
#include "identity/sources/azure_arc.hpp"
#include "identity/sources/azure_cli.hpp"
#include "identity/sources/cloud_shell.hpp"
#include "identity/sources/imds.hpp"
#include "identity/sources/service_fabric.hpp"
#include "identity/sources/workload_identity.hpp"
#include "identity/token_diagnostic.hpp"
#include "identity/token_source.hpp"
#include "support/fake_token_endpoint.hpp"
#include "upstream/tls.hpp"

using namespace msiproxy;
using msiproxy::test::canned_reply;
using msiproxy::test::endpoint_request;
using msiproxy::test::fake_token_endpoint;
namespace asio = boost::asio;
namespace fs = std::filesystem;

namespace {

// A private scratch directory, removed with everything in it.
class scratch_dir {
  public:
    scratch_dir() {
        std::string tmpl = (fs::temp_directory_path() / "msiproxy-sources-XXXXXX").string();
        REQUIRE(::mkdtemp(tmpl.data()) != nullptr);
        path_ = tmpl;
    }
    ~scratch_dir() {
        std::error_code ec;
        fs::remove_all(path_, ec);
    }
    std::string path() const { return path_.string(); }
    std::string write(const std::string& name, const std::string& content, int mode = 0600) const {
        fs::path p = path_ / name;
        std::ofstream(p, std::ios::binary | std::ios::trunc) << content;
        fs::permissions(p, static_cast<fs::perms>(mode));
        return p.string();
    }

  private:
    fs::path path_;
};

env_lookup fake_env(std::map<std::string, std::string> vars) {
    return [vars = std::move(vars)](const char* name) {
        auto it = vars.find(name);
        return it == vars.end() ? std::string() : it->second;
    };
}

// Runs `aw` on `ioc` to completion, then stops the io_context (the fake's accept loop would keep
// it running) and, when given, the fake.
template <class T>
T run_on(asio::io_context& ioc, fake_token_endpoint* fake, asio::awaitable<T> aw) {
    std::optional<T> out;
    std::exception_ptr error;
    asio::co_spawn(ioc, std::move(aw), [&](std::exception_ptr e, T v) {
        error = e;
        if (!e) out = std::move(v);
        if (fake) fake->stop();
        ioc.stop();
    });
    ioc.restart();
    ioc.run();
    if (error) std::rethrow_exception(error);
    REQUIRE(out.has_value());
    return std::move(*out);
}

fetch_outcome fetch_once(asio::io_context& ioc, fake_token_endpoint* fake, token_source& src,
                         const std::string& resource, identity_selector id = {}) {
    return run_on(ioc, fake, src.fetch(resource, id));
}

access_token ok(const fetch_outcome& o) {
    if (auto* f = std::get_if<fetch_failure>(&o)) FAIL("fetch failed: " << f->message);
    return std::get<access_token>(o);
}

fetch_failure failed(const fetch_outcome& o) {
    REQUIRE(std::holds_alternative<fetch_failure>(o));
    return std::get<fetch_failure>(o);
}

bool contains(const std::string& hay, std::string_view needle) {
    return hay.find(needle) != std::string::npos;
}

identity_selector by_client(std::string id) {
    identity_selector s;
    s.client_id = std::move(id);
    return s;
}

identity_selector by_object(std::string id) {
    identity_selector s;
    s.object_id = std::move(id);
    return s;
}

// A self-signed certificate for 127.0.0.1, made with the OpenSSL API at test time. Private to
// this file (tests/support/tls_certs.* is another engineer's).
struct sources_test_cert {
    std::string cert_pem, key_pem;
    sha1_thumbprint sha1{};

    sources_test_cert() {
        EVP_PKEY* key = EVP_EC_gen("P-256");
        REQUIRE(key);
        X509* x = X509_new();
        X509_set_version(x, 2);
        ASN1_INTEGER_set(X509_get_serialNumber(x), 4242);
        X509_gmtime_adj(X509_getm_notBefore(x), -3600);
        X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600);
        X509_set_pubkey(x, key);
        X509_NAME* name = X509_get_subject_name(x);
        X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                                   reinterpret_cast<const unsigned char*>("127.0.0.1"), -1, -1, 0);
        X509_set_issuer_name(x, name);
        X509V3_CTX v3;
        X509V3_set_ctx_nodb(&v3);
        X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
        X509_EXTENSION* san =
            X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, "IP:127.0.0.1");
        REQUIRE(san);
        X509_add_ext(x, san, -1);
        X509_EXTENSION_free(san);
        X509_EXTENSION* bc =
            X509V3_EXT_conf_nid(nullptr, &v3, NID_basic_constraints, "critical,CA:TRUE");
        X509_add_ext(x, bc, -1);
        X509_EXTENSION_free(bc);
        REQUIRE(X509_sign(x, key, EVP_sha256()) > 0);
        unsigned len = 0;
        X509_digest(x, EVP_sha1(), sha1.data(), &len);
        REQUIRE(len == 20);
        cert_pem = to_pem([&](BIO* b) { return PEM_write_bio_X509(b, x); });
        key_pem = to_pem([&](BIO* b) {
            return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
        });
        X509_free(x);
        EVP_PKEY_free(key);
    }

    std::string hex_thumbprint(bool colons = false, bool upper = true) const {
        static constexpr char lo[] = "0123456789abcdef", up[] = "0123456789ABCDEF";
        const char* digits = upper ? up : lo;
        std::string out;
        for (auto b : sha1) {
            if (colons && !out.empty()) out += ':';
            out += digits[b >> 4];
            out += digits[b & 15];
        }
        return out;
    }

    asio::ssl::context server_context() const {
        asio::ssl::context ctx(asio::ssl::context::tls_server);
        ctx.use_certificate_chain(asio::buffer(cert_pem));
        ctx.use_private_key(asio::buffer(key_pem), asio::ssl::context::pem);
        return ctx;
    }

    // A strict client context that trusts this certificate.
    asio::ssl::context trusting_client_context() const {
        auto ctx = make_client_tls_context("");
        ctx.add_certificate_authority(asio::buffer(cert_pem));
        return ctx;
    }

  private:
    template <class F>
    static std::string to_pem(F write) {
        BIO* b = BIO_new(BIO_s_mem());
        REQUIRE(write(b) == 1);
        char* data = nullptr;
        long n = BIO_get_mem_data(b, &data);
        std::string out(data, static_cast<std::size_t>(n));
        BIO_free(b);
        return out;
    }
};

const sources_test_cert& test_cert() {
    static const sources_test_cert cert;
    return cert;
}

const std::string far_future_epoch = "4102444800";  // 2100-01-01T00:00:00Z

}  // namespace

// ---------------------------------------------------------------------------------------------
// IMDS and App Service 2019

TEST_CASE("sources: imds request shape, user-assigned selectors", "[unit][sources]") {
    asio::io_context ioc;
    fake_token_endpoint fake(ioc);
    const std::string body =
        R"({"access_token":"ti","expires_in":"86399","expires_on":")" + far_future_epoch + "\"}";
    for (int i = 0; i < 3; ++i)
        fake.push({200, {}, body});
    auto tls = make_client_tls_context("");
    auto src =
        make_imds_source(ioc.get_executor(), tls, fake.url("/metadata/identity/oauth2/token"));
    CHECK(src->name() == "imds");
    CHECK(ok(fetch_once(ioc, nullptr, *src, "https://management.azure.com")).value == "ti");
    identity_selector by_resource;
    by_resource.resource_id = "/subscriptions/s/rg/r";
    ok(fetch_once(ioc, nullptr, *src, "r", by_client("cid-1")));
    ok(fetch_once(ioc, &fake, *src, "r", by_resource));  // the last one stops the fake
    REQUIRE(fake.requests().size() == 3);
    const auto& r = fake.requests()[0];
    CHECK(r.method == "GET");
    CHECK(r.path == "/metadata/identity/oauth2/token");
    CHECK(r.query_value("api-version") == "2018-02-01");
    CHECK(r.query_value("resource") == "https://management.azure.com");
    CHECK(r.header("Metadata") == "true");
    CHECK_FALSE(r.has_query("client_id"));
    CHECK(fake.requests()[1].query_value("client_id") == "cid-1");
    CHECK(fake.requests()[2].query_value("msi_res_id") == "/subscriptions/s/rg/r");
}

TEST_CASE("sources: app service 2019 request shape, user-assigned selectors", "[unit][sources]") {
    asio::io_context ioc;
    fake_token_endpoint fake(ioc);
    const std::string body = R"({"access_token":"ta","expires_on":")" + far_future_epoch +
                             R"(","resource":"r","token_type":"Bearer"})";
    for (int i = 0; i < 3; ++i)
        fake.push({200, {}, body});
    auto tls = make_client_tls_context("");
    auto src = make_app_service_source(ioc.get_executor(), tls, fake.url("/msi/token"),
                                       fake_env({{"IDENTITY_HEADER", "h3ader"}}));
    CHECK(src->name() == "app-service");
    auto t = ok(fetch_once(ioc, nullptr, *src, "https://vault.azure.net"));
    CHECK(t.value == "ta");
    CHECK(t.expires_on == sys_time(std::chrono::seconds(4102444800)));
    ok(fetch_once(ioc, nullptr, *src, "r", by_client("cid-1")));
    ok(fetch_once(ioc, &fake, *src, "r", by_object("oid-1")));  // the last one stops the fake
    REQUIRE(fake.requests().size() == 3);
    const auto& r = fake.requests()[0];
    CHECK(r.method == "GET");
    CHECK(r.path == "/msi/token");
    CHECK(r.query_value("api-version") == "2019-08-01");
    CHECK(r.query_value("resource") == "https://vault.azure.net");
    CHECK(r.header("X-IDENTITY-HEADER") == "h3ader");
    CHECK(fake.requests()[1].query_value("client_id") == "cid-1");
    CHECK(fake.requests()[2].query_value("principal_id") == "oid-1");
}

// ---------------------------------------------------------------------------------------------
// App Service 2017 / Azure ML

TEST_CASE("sources: app service 2017 request shape and date-string expiry", "[unit][sources]") {
    asio::io_context ioc;
    fake_token_endpoint fake(ioc);
    fake.push({200, {}, R"({"access_token":"t17","expires_on":"01/01/2100 00:00:00 +00:00"})"});
    auto tls = make_client_tls_context("");
    auto src = make_app_service_2017_source(ioc.get_executor(), tls, fake.url("/msi/token"),
                                            fake_env({{"MSI_SECRET", "s3cret"}}));
    CHECK(src->name() == "app-service-2017");
    auto t = ok(fetch_once(ioc, &fake, *src, "https://vault.azure.net"));
    CHECK(t.value == "t17");
    CHECK(t.expires_on == sys_time(std::chrono::seconds(4102444800)));
    REQUIRE(fake.requests().size() == 1);
    const auto& r = fake.requests()[0];
    CHECK(r.method == "GET");
    CHECK(r.path == "/msi/token");
    CHECK(r.query_value("api-version") == "2017-09-01");
    CHECK(r.query_value("resource") == "https://vault.azure.net");
    CHECK(r.header("secret") == "s3cret");
    CHECK_FALSE(r.has_query("clientid"));
    CHECK_FALSE(r.has_query("client_id"));
}

TEST_CASE("sources: app service 2017 user-assigned via clientid only", "[unit][sources]") {
    asio::io_context ioc;
    fake_token_endpoint fake(ioc);
    fake.push({200, {}, R"({"access_token":"t","expires_on":)" + far_future_epoch + "}"});
    auto tls = make_client_tls_context("");
    auto src = make_app_service_2017_source(ioc.get_executor(), tls, fake.url("/msi/token"),
                                            fake_env({{"MSI_SECRET", "x"}}));
    ok(fetch_once(ioc, nullptr, *src, "r", by_client("cid-1")));
    REQUIRE(fake.requests().size() == 1);
    CHECK(fake.requests()[0].query_value("clientid") == "cid-1");
    CHECK_FALSE(fake.requests()[0].has_query("client_id"));

    // Object ids cannot be expressed: refused without asking the endpoint.
    auto f = failed(fetch_once(ioc, &fake, *src, "r", by_object("oid-1")));
    CHECK(f.kind == failure_kind::identity_not_found);
    CHECK_FALSE(f.retryable);
    CHECK(contains(f.message, "client_id"));
    CHECK(fake.requests().size() == 1);
}

// ---------------------------------------------------------------------------------------------
// Cloud Shell

TEST_CASE("sources: cloud shell posts a form with Metadata", "[unit][sources]") {
    asio::io_context ioc;
    fake_token_endpoint fake(ioc);
    auto tls = make_client_tls_context("");
    auto src = make_cloud_shell_source(ioc.get_executor(), tls, fake.url("/oauth2/token"));
    CHECK(src->name() == "cloud-shell");
    auto t = ok(fetch_once(ioc, nullptr, *src, "https://management.azure.com/"));
    CHECK(t.value == "tok");
    REQUIRE(fake.requests().size() == 1);
    const auto& r = fake.requests()[0];
    CHECK(r.method == "POST");
    CHECK(r.path == "/oauth2/token");
    CHECK(r.query.empty());
    CHECK(r.header("metadata") == "true");
    CHECK(r.header("content-type") == "application/x-www-form-urlencoded");
    CHECK(r.body == "resource=https%3A%2F%2Fmanagement.azure.com%2F");
    CHECK(r.form_value("resource") == "https://management.azure.com/");

    auto f = failed(fetch_once(ioc, &fake, *src, "r", by_client("c")));
    CHECK(f.kind == failure_kind::identity_not_found);
    CHECK(fake.requests().size() == 1);
}

// ---------------------------------------------------------------------------------------------
// Azure Arc

namespace {

// Answers like himds: 401 with the challenge until the right key comes back.
void arc_agent(fake_token_endpoint& fake, std::string realm, std::string key,
               std::string body = fake_token_endpoint::token_body("arc-token")) {
    fake.handler = [realm = std::move(realm), key = std::move(key),
                    body = std::move(body)](const endpoint_request& r) {
        if (!r.has_header("authorization")) {
            return canned_reply{401, {{"WWW-Authenticate", "Basic realm=" + realm}}, ""};
        }
        if (r.header("authorization") != "Basic " + key) return canned_reply{401, {}, "wrong key"};
        return canned_reply{200, {}, body};
    };
}

}  // namespace

TEST_CASE("sources: arc challenge, key file, second request", "[unit][sources][arc]") {
    scratch_dir dir;
    std::string key_file = dir.write("abc.key", "secret-key-value");
    asio::io_context ioc;
    fake_token_endpoint fake(ioc);
    arc_agent(fake, key_file, "secret-key-value");
    auto tls = make_client_tls_context("");
    auto src = make_azure_arc_source(ioc.get_executor(), tls,
                                     fake.url("/metadata/identity/oauth2/token"), dir.path());
    CHECK(src->name() == "azure-arc");
    auto t = ok(fetch_once(ioc, &fake, *src, "https://vault.azure.net"));
    CHECK(t.value == "arc-token");
    REQUIRE(fake.requests().size() == 2);
    for (const auto& r : fake.requests()) {
        CHECK(r.method == "GET");
        CHECK(r.path == "/metadata/identity/oauth2/token");
        CHECK(r.query_value("api-version") == "2020-06-01");
        CHECK(r.query_value("resource") == "https://vault.azure.net");
        CHECK(r.header("metadata") == "true");
    }
    CHECK_FALSE(fake.requests()[0].has_header("authorization"));
    CHECK(fake.requests()[1].header("authorization") == "Basic secret-key-value");
}

TEST_CASE("sources: arc refuses a bad challenge before reading anything", "[unit][sources][arc]") {
    scratch_dir dir, elsewhere;
    dir.write("abc.key", "k");
    dir.write("abc.txt", "k");
    dir.write("big.key", std::string(4097, 'k'));
    dir.write("max.key", std::string(4096, 'k'));
    elsewhere.write("abc.key", "k");
    fs::create_directory(fs::path(dir.path()) / "sub.key");
    fs::create_symlink(fs::path(elsewhere.path()) / "abc.key", fs::path(dir.path()) / "link.key");

    struct bad_case {
        std::string realm, expect;
    };
    std::vector<bad_case> cases = {
        {elsewhere.path() + "/abc.key", "not in"},
        {dir.path() + "/sub/../abc.key", "not in"},
        {dir.path() + "/abc.txt", ".key"},
        {dir.path() + "/.key", ".key"},
        {dir.path() + "/big.key", "larger than 4096"},
        {dir.path() + "/sub.key", "not a regular file"},
        {dir.path() + "/link.key", "Arc key file"},
        {dir.path() + "/missing.key", "cannot open"},
        {dir.path() + "/abc.key=x", "exactly one '='"},
        {"abc.key", "not in"},
    };
    for (const auto& c : cases) {
        INFO(c.realm);
        asio::io_context ioc;
        fake_token_endpoint fake(ioc);
        arc_agent(fake, c.realm, "k");
        auto tls = make_client_tls_context("");
        auto src = make_azure_arc_source(ioc.get_executor(), tls, fake.url("/t"), dir.path());
        auto f = failed(fetch_once(ioc, &fake, *src, "r"));
        CHECK(contains(f.message, c.expect));
        CHECK(fake.requests().size() == 1);  // the key never went anywhere
    }

    SECTION("a key of exactly 4096 bytes is fine") {
        asio::io_context ioc;
        fake_token_endpoint fake(ioc);
        arc_agent(fake, dir.path() + "/max.key", std::string(4096, 'k'));
        auto tls = make_client_tls_context("");
        auto src = make_azure_arc_source(ioc.get_executor(), tls, fake.url("/t"), dir.path());
        ok(fetch_once(ioc, &fake, *src, "r"));
    }
    SECTION("the scheme must be Basic realm") {
        asio::io_context ioc;
        fake_token_endpoint fake(ioc);
        fake.push({401, {{"WWW-Authenticate", "Bearer realm=" + dir.path() + "/abc.key"}}, ""});
        auto tls = make_client_tls_context("");
        auto src = make_azure_arc_source(ioc.get_executor(), tls, fake.url("/t"), dir.path());
        CHECK(contains(failed(fetch_once(ioc, &fake, *src, "r")).message, "Basic realm"));
    }
}

TEST_CASE("sources: arc needs a 401 first", "[unit][sources][arc]") {
    scratch_dir dir;
    auto tls = make_client_tls_context("");
    SECTION("200 at once") {
        asio::io_context ioc;
        fake_token_endpoint fake(ioc);
        fake.push({200, {}, fake_token_endpoint::token_body()});
        auto src = make_azure_arc_source(ioc.get_executor(), tls, fake.url("/t"), dir.path());
        auto f = failed(fetch_once(ioc, &fake, *src, "r"));
        CHECK(contains(f.message, "expected HTTP 401"));
        CHECK(contains(f.message, "HTTP 200"));
        CHECK(f.kind == failure_kind::bad_response);
    }
    SECTION("503 stays retryable") {
        asio::io_context ioc;
        fake_token_endpoint fake(ioc);
        fake.push({503, {}, R"({"error":"busy"})"});
        auto src = make_azure_arc_source(ioc.get_executor(), tls, fake.url("/t"), dir.path());
        auto f = failed(fetch_once(ioc, &fake, *src, "r"));
        CHECK(contains(f.message, "expected HTTP 401"));
        CHECK(f.http_status == 503);
        CHECK(f.retryable);
    }
    SECTION("401 without a challenge") {
        asio::io_context ioc;
        fake_token_endpoint fake(ioc);
        fake.push({401, {}, ""});
        auto src = make_azure_arc_source(ioc.get_executor(), tls, fake.url("/t"), dir.path());
        CHECK(failed(fetch_once(ioc, &fake, *src, "r")).kind == failure_kind::bad_response);
    }
}

TEST_CASE("sources: arc user-assigned fails closed unless echoed", "[unit][sources][arc]") {
    scratch_dir dir;
    std::string key_file = dir.write("k.key", "kk");
    auto tls = make_client_tls_context("");
    SECTION("old agent ignores the selector") {
        asio::io_context ioc;
        fake_token_endpoint fake(ioc);
        arc_agent(fake, key_file, "kk");
        auto src = make_azure_arc_source(ioc.get_executor(), tls, fake.url("/t"), dir.path());
        auto f = failed(fetch_once(ioc, &fake, *src, "r", by_client("ABC-1")));
        CHECK(f.kind == failure_kind::identity_not_found);
        CHECK_FALSE(f.retryable);
        REQUIRE(fake.requests().size() == 2);
        CHECK(fake.requests()[1].query_value("client_id") == "ABC-1");
    }
    SECTION("new agent echoes it (case-insensitive)") {
        asio::io_context ioc;
        fake_token_endpoint fake(ioc);
        arc_agent(fake, key_file, "kk",
                  R"({"access_token":"ua","expires_in":3600,"client_id":"abc-1"})");
        auto src = make_azure_arc_source(ioc.get_executor(), tls, fake.url("/t"), dir.path());
        CHECK(ok(fetch_once(ioc, &fake, *src, "r", by_client("ABC-1"))).value == "ua");
    }
    SECTION("resource ids use the IMDS spelling") {
        asio::io_context ioc;
        fake_token_endpoint fake(ioc);
        arc_agent(fake, key_file, "kk");
        auto src = make_azure_arc_source(ioc.get_executor(), tls, fake.url("/t"), dir.path());
        identity_selector s;
        s.resource_id = "/subscriptions/x/id";
        ok(fetch_once(ioc, &fake, *src, "r", s));
        CHECK(fake.requests()[0].query_value("msi_res_id") == "/subscriptions/x/id");
        CHECK_FALSE(fake.requests()[0].has_query("mi_res_id"));
    }
}

// ---------------------------------------------------------------------------------------------
// Workload identity

TEST_CASE("sources: workload identity request and rotated assertion", "[unit][sources][wi]") {
    scratch_dir dir;
    std::string file = dir.write("token", "assertion-1\n");
    asio::io_context ioc;
    fake_token_endpoint fake(ioc);
    fake.fallback.body =
        R"({"token_type":"Bearer","expires_in":3599,"ext_expires_in":3599,"access_token":"wi"})";
    auto tls = make_client_tls_context("");
    workload_identity_settings s;
    s.tenant_id = "tenant-1";
    s.client_id = "env-client";
    s.token_file = file;
    s.endpoint = fake.url("/tenant-1/oauth2/v2.0/token");
    auto src = make_workload_identity_source(ioc.get_executor(), tls, s);
    CHECK(src->name() == "workload-identity");

    auto two = [&]() -> asio::awaitable<std::pair<fetch_outcome, fetch_outcome>> {
        // Named, not temporaries: GCC 12 destroys a temporary in a co_await expression twice.
        const std::string resource = "https://vault.azure.net";
        const identity_selector system_assigned, route_client = by_client("route-client");
        auto a = co_await src->fetch(resource, system_assigned);
        dir.write("token", "assertion-2");  // kubelet rotated the file
        auto b = co_await src->fetch(resource, route_client);
        co_return std::pair{std::move(a), std::move(b)};
    };
    auto [a, b] = run_on(ioc, &fake, two());
    CHECK(ok(a).value == "wi");
    CHECK(ok(b).value == "wi");
    REQUIRE(fake.requests().size() == 2);
    const auto& r = fake.requests()[0];
    CHECK(r.method == "POST");
    CHECK(r.path == "/tenant-1/oauth2/v2.0/token");
    CHECK(r.header("content-type") == "application/x-www-form-urlencoded");
    CHECK(r.form_value("grant_type") == "client_credentials");
    CHECK(r.form_value("client_assertion_type") ==
          "urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
    CHECK(r.form_value("client_id") == "env-client");
    CHECK(r.form_value("scope") == "https://vault.azure.net/.default");
    CHECK(r.form_value("client_assertion") == "assertion-1");
    CHECK(contains(
        r.body,
        "client_assertion_type=urn%3Aietf%3Aparams%3Aoauth%3Aclient-assertion-type%3Ajwt-bearer"));
    CHECK(fake.requests()[1].form_value("client_assertion") == "assertion-2");
    CHECK(fake.requests()[1].form_value("client_id") == "route-client");
}

TEST_CASE("sources: workload identity builds the authority URL over https", "[unit][sources][wi]") {
    const auto& cert = test_cert();
    auto server_tls = cert.server_context();
    auto client_tls = cert.trusting_client_context();
    scratch_dir dir;
    asio::io_context ioc;
    fake_token_endpoint fake(ioc, &server_tls);
    workload_identity_settings s;
    s.authority_host = "https://127.0.0.1:" + std::to_string(fake.port());  // no trailing slash
    s.tenant_id = "contoso.onmicrosoft.com";
    s.client_id = "c";
    s.token_file = dir.write("t", "a");
    auto src = make_workload_identity_source(ioc.get_executor(), client_tls, s);
    ok(fetch_once(ioc, &fake, *src, "api://app"));
    REQUIRE(fake.requests().size() == 1);
    CHECK(fake.requests()[0].path == "/contoso.onmicrosoft.com/oauth2/v2.0/token");
    CHECK(fake.requests()[0].form_value("scope") == "api://app/.default");
}

TEST_CASE("sources: workload identity settings are checked", "[unit][sources][wi]") {
    asio::io_context ioc;
    auto tls = make_client_tls_context("");
    workload_identity_settings s;
    s.tenant_id = "t";
    s.client_id = "c";
    s.token_file = "/nonexistent";
    s.authority_host = "http://login.example/";
    CHECK_THROWS_WITH(make_workload_identity_source(ioc.get_executor(), tls, s),
                      Catch::Contains("https"));
    s.authority_host = entra_default_authority;
    s.tenant_id = "../evil";
    CHECK_THROWS(make_workload_identity_source(ioc.get_executor(), tls, s));
    s.tenant_id = "";
    CHECK_THROWS(make_workload_identity_source(ioc.get_executor(), tls, s));
    s.tenant_id = "t";
    s.token_file = "";
    CHECK_THROWS(make_workload_identity_source(ioc.get_executor(), tls, s));

    // A missing file is a failure of the fetch, not of the process.
    s.token_file = "/nonexistent/token";
    s.endpoint = "http://127.0.0.1:1/t";
    auto src = make_workload_identity_source(ioc.get_executor(), tls, s);
    auto f = failed(fetch_once(ioc, nullptr, *src, "r"));
    CHECK(contains(f.message, "federated token file"));
    CHECK(failed(fetch_once(ioc, nullptr, *src, "r", by_object("o"))).kind ==
          failure_kind::identity_not_found);
}

TEST_CASE("sources: Entra errors are classified", "[unit][sources][wi]") {
    auto f = classify_entra_failure(
        400,
        R"({"error":"invalid_client","error_description":"AADSTS70021: No matching federated identity record found.\r\nTrace ID: x\r\nTimestamp: y"})",
        "");
    CHECK(f.kind == failure_kind::identity_not_found);
    CHECK_FALSE(f.retryable);
    CHECK(f.message ==
          "HTTP 400: invalid_client: AADSTS70021: No matching federated identity record found.");
    CHECK_FALSE(classify_entra_failure(401, R"({"error":"unauthorized_client"})", "").retryable);
    CHECK_FALSE(classify_entra_failure(400, R"({"error":"invalid_scope"})", "").retryable);
    auto grant = classify_entra_failure(
        400,
        R"({"error":"invalid_grant","error_description":"AADSTS700024: Client assertion is not within its valid time range."})",
        "");
    CHECK(grant.retryable);
    auto busy = classify_entra_failure(503, R"({"error":"temporarily_unavailable"})", "7");
    CHECK(busy.retryable);
    CHECK(busy.retry_after == std::chrono::seconds(7));
    auto slow = classify_entra_failure(429, "", "");
    CHECK(slow.kind == failure_kind::throttled);
    CHECK(slow.retryable);

    // Through the source.
    scratch_dir dir;
    asio::io_context ioc;
    fake_token_endpoint fake(ioc);
    fake.push({400, {}, R"({"error":"invalid_client","error_description":"bad"})"});
    auto tls = make_client_tls_context("");
    workload_identity_settings s;
    s.tenant_id = "t";
    s.client_id = "c";
    s.token_file = dir.write("t", "a");
    s.endpoint = fake.url("/t/oauth2/v2.0/token");
    auto src = make_workload_identity_source(ioc.get_executor(), tls, s);
    auto sf = failed(fetch_once(ioc, &fake, *src, "r"));
    CHECK_FALSE(sf.retryable);
    CHECK(contains(sf.message, "invalid_client: bad"));
}

// ---------------------------------------------------------------------------------------------
// Service Fabric

TEST_CASE("sources: service fabric thumbprint normalisation", "[unit][sources][sf]") {
    auto a = parse_thumbprint("0123456789ABCDEF0123456789abcdef01234567");
    REQUIRE(a);
    CHECK((*a)[0] == 0x01);
    CHECK((*a)[7] == 0xEF);
    CHECK(parse_thumbprint("01:23:45:67:89:AB:CD:EF:01:23:45:67:89:ab:cd:ef:01:23:45:67") == a);
    CHECK(parse_thumbprint(" 0123456789ABCDEF 0123456789abcdef01234567\n") == a);
    CHECK_FALSE(parse_thumbprint("0123456789ABCDEF0123456789abcdef0123456"));
    CHECK_FALSE(parse_thumbprint("0123456789ABCDEF0123456789abcdef012345678"));
    CHECK_FALSE(parse_thumbprint("0123456789ABCDEF0123456789abcdef0123456g"));
    CHECK_FALSE(parse_thumbprint(""));
}

TEST_CASE("sources: service fabric pins the server certificate", "[unit][sources][sf]") {
    const auto& cert = test_cert();
    auto server_tls = cert.server_context();
    auto env = fake_env({{"IDENTITY_HEADER", "sf-secret"}});

    SECTION("right thumbprint: request shape") {
        asio::io_context ioc;
        fake_token_endpoint fake(ioc, &server_tls);
        fake.push({200,
                   {},
                   R"({"token_type":"Bearer","access_token":"sf","expires_on":)" +
                       far_future_epoch + R"(,"resource":"r"})"});
        auto src = make_service_fabric_source(ioc.get_executor(),
                                              fake.url("/metadata/identity/oauth2/token"),
                                              cert.hex_thumbprint(true, false), "", env);
        CHECK(src->name() == "service-fabric");
        CHECK(ok(fetch_once(ioc, &fake, *src, "https://vault.azure.net")).value == "sf");
        REQUIRE(fake.requests().size() == 1);
        const auto& r = fake.requests()[0];
        CHECK(r.method == "GET");
        CHECK(r.path == "/metadata/identity/oauth2/token");
        CHECK(r.query_value("api-version") == "2019-07-01-preview");
        CHECK(r.query_value("resource") == "https://vault.azure.net");
        CHECK(r.header("secret") == "sf-secret");
    }
    SECTION("IDENTITY_API_VERSION is honoured") {
        asio::io_context ioc;
        fake_token_endpoint fake(ioc, &server_tls);
        auto src = make_service_fabric_source(ioc.get_executor(), fake.url("/t"),
                                              cert.hex_thumbprint(), "2020-05-01", env);
        ok(fetch_once(ioc, &fake, *src, "r"));
        CHECK(fake.requests()[0].query_value("api-version") == "2020-05-01");
    }
    SECTION("wrong thumbprint: no request is sent") {
        asio::io_context ioc;
        fake_token_endpoint fake(ioc, &server_tls);
        std::string wrong = cert.hex_thumbprint();
        wrong[0] = wrong[0] == 'A' ? 'B' : 'A';
        auto src = make_service_fabric_source(ioc.get_executor(), fake.url("/t"), wrong, "", env);
        auto f = failed(fetch_once(ioc, &fake, *src, "r"));
        CHECK(f.kind == failure_kind::unreachable);
        CHECK(
            contains(f.message, boost::system::error_code(errc::tls_certificate_error).message()));
        CHECK(fake.requests().empty());
    }
    SECTION("the shared client context stays strict against the same server") {
        asio::io_context ioc;
        fake_token_endpoint fake(ioc, &server_tls);
        auto strict = make_client_tls_context("");
        fetch_request req;
        req.url = fake.url("/t");
        auto [ec, res] = run_on(ioc, &fake, http_fetch(ioc.get_executor(), strict, req));
        CHECK(ec == errc::tls_certificate_error);
        CHECK(fake.requests().empty());
    }
    SECTION("user-assigned identities are refused") {
        asio::io_context ioc;
        auto src = make_service_fabric_source(ioc.get_executor(), "https://127.0.0.1:1/t",
                                              cert.hex_thumbprint(), "", env);
        CHECK(failed(fetch_once(ioc, nullptr, *src, "r", by_client("c"))).kind ==
              failure_kind::identity_not_found);
    }
    SECTION("http endpoints and malformed thumbprints are configuration errors") {
        asio::io_context ioc;
        CHECK_THROWS_WITH(make_service_fabric_source(ioc.get_executor(), "http://127.0.0.1:1/t",
                                                     cert.hex_thumbprint(), "", env),
                          Catch::Contains("https"));
        CHECK_THROWS_WITH(
            make_service_fabric_source(ioc.get_executor(), "https://127.0.0.1:1/t", "abc", "", env),
            Catch::Contains("40 hex"));
    }
}

// ---------------------------------------------------------------------------------------------
// Azure CLI

namespace {

std::string fake_az(const scratch_dir& dir, const std::string& body) {
    return dir.write(
        "az", "#!/bin/sh\nprintf '%s\\n' \"$@\" > \"" + dir.path() + "/args\"\n" + body, 0700);
}

std::string read_file(const std::string& path) {
    std::ifstream in(path);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

TEST_CASE("sources: azure cli runs az and parses its output", "[unit][sources][cli]") {
    scratch_dir dir;
    std::string az = fake_az(dir,
                             "cat <<'EOF'\n{\"accessToken\":\"cli-token\",\"expiresOn\":"
                             "\"2099-12-31 23:00:00.000000\",\"expires_on\":" +
                                 far_future_epoch +
                                 ",\"subscription\":\"s\",\"tenant\":\"t\",\"tokenType\":"
                                 "\"Bearer\"}\nEOF\n");
    asio::io_context ioc;
    auto src = make_azure_cli_source(ioc.get_executor(), az);
    CHECK(src->name() == "azure-cli");
    auto t = ok(fetch_once(ioc, nullptr, *src, "https://vault.azure.net"));
    CHECK(t.value == "cli-token");
    CHECK(t.expires_on == sys_time(std::chrono::seconds(4102444800)));
    CHECK(read_file(dir.path() + "/args") ==
          "account\nget-access-token\n--resource\nhttps://vault.azure.net\n--output\njson\n");

    CHECK(failed(fetch_once(ioc, nullptr, *src, "r", by_client("c"))).kind ==
          failure_kind::identity_not_found);
}

TEST_CASE("sources: azure cli failures", "[unit][sources][cli]") {
    scratch_dir dir;
    asio::io_context ioc;
    SECTION("az says why") {
        auto az = fake_az(dir,
                          "echo 'WARNING: something' >&2\necho \"ERROR: Please run 'az login' to "
                          "setup account.\" >&2\nexit 1\n");
        auto f =
            failed(fetch_once(ioc, nullptr, *make_azure_cli_source(ioc.get_executor(), az), "r"));
        CHECK(contains(f.message, "exited with status 1"));
        CHECK(contains(f.message, "ERROR: Please run 'az login'"));
        CHECK(f.retryable);
    }
    SECTION("a hung az is killed at the timeout") {
        auto az = fake_az(dir, "exec sleep 30\n");
        auto start = std::chrono::steady_clock::now();
        auto src = make_azure_cli_source(ioc.get_executor(), az, std::chrono::milliseconds(200));
        auto f = failed(fetch_once(ioc, nullptr, *src, "r"));
        CHECK(contains(f.message, "killed"));
        CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(10));
    }
    SECTION("no az") {
        auto src = make_azure_cli_source(ioc.get_executor(), dir.path() + "/missing-az");
        auto f = failed(fetch_once(ioc, nullptr, *src, "r"));
        CHECK(contains(f.message, "cannot run"));
    }
    SECTION("garbage output") {
        auto az = fake_az(dir, "echo not-json\n");
        auto f =
            failed(fetch_once(ioc, nullptr, *make_azure_cli_source(ioc.get_executor(), az), "r"));
        CHECK(f.kind == failure_kind::bad_response);
    }
}

TEST_CASE("sources: azure cli output parsing", "[unit][sources][cli]") {
    const sys_time now = sys_time(std::chrono::seconds(1'800'000'000));
    // Older az: only expiresOn, local wall-clock time.
    std::tm tm{};
    tm.tm_year = 2099 - 1900;
    tm.tm_mon = 11;
    tm.tm_mday = 31;
    tm.tm_hour = 23;
    tm.tm_isdst = -1;
    const auto local = std::chrono::system_clock::from_time_t(std::mktime(&tm));
    auto t =
        parse_az_cli_token(R"({"accessToken":"a","expiresOn":"2099-12-31 23:00:00.000000"})", now);
    REQUIRE(std::holds_alternative<access_token>(t));
    CHECK(std::get<access_token>(t).expires_on == local);
    CHECK(std::holds_alternative<access_token>(
        parse_az_cli_token(R"({"accessToken":"a","expires_on":"4102444800"})", now)));
    CHECK(std::holds_alternative<fetch_failure>(parse_az_cli_token(R"({"accessToken":"a"})", now)));
    CHECK(std::holds_alternative<fetch_failure>(
        parse_az_cli_token(R"({"expires_on":4102444800})", now)));
    CHECK(std::holds_alternative<fetch_failure>(
        parse_az_cli_token(R"({"accessToken":"a","expiresOn":"2099-13-31 23:00:00"})", now)));
    CHECK(std::holds_alternative<fetch_failure>(
        parse_az_cli_token(R"({"accessToken":"a","expires_on":1700000000})", now)));
    CHECK(std::holds_alternative<fetch_failure>(parse_az_cli_token("[1]", now)));
}

// ---------------------------------------------------------------------------------------------
// Source selection

TEST_CASE("sources: auto detection order", "[unit][sources][auto]") {
    asio::io_context ioc;
    auto tls = make_client_tls_context("");
    identity_config cfg;
    const std::string thumb(40, 'a');
    bool himds = false;
    file_probe probe = [&](const char* path) {
        return himds && std::string(path) == arc_himds_path;
    };
    auto pick = [&](std::map<std::string, std::string> vars) {
        return make_token_source(cfg, fake_env(std::move(vars)), ioc.get_executor(), tls, probe);
    };
    std::map<std::string, std::string> all = {
        {"IDENTITY_ENDPOINT", "https://127.0.0.1:2377/metadata/identity/oauth2/token"},
        {"IDENTITY_HEADER", "h"},
        {"IDENTITY_SERVER_THUMBPRINT", thumb},
        {"MSI_ENDPOINT", "http://127.0.0.1:50342/oauth2/token"},
        {"MSI_SECRET", "s"},
        {"IMDS_ENDPOINT", "http://127.0.0.1:40342"},
        {"AZURE_FEDERATED_TOKEN_FILE", "/var/run/secrets/azure/tokens/azure-identity-token"},
        {"AZURE_CLIENT_ID", "c"},
        {"AZURE_TENANT_ID", "t"},
    };
    auto without = [&](std::initializer_list<const char*> names) {
        auto v = all;
        for (const char* n : names)
            v.erase(n);
        return v;
    };
    auto c = pick(all);
    CHECK(c.source->name() == "service-fabric");
    CHECK(contains(c.why, "IDENTITY_SERVER_THUMBPRINT"));
    c = pick(without({"IDENTITY_SERVER_THUMBPRINT"}));
    CHECK(c.source->name() == "app-service");
    CHECK(contains(c.why, "2019-08-01"));
    c = pick(without({"IDENTITY_SERVER_THUMBPRINT", "IDENTITY_HEADER"}));
    CHECK(c.source->name() == "app-service-2017");
    CHECK(contains(c.why, "MSI_SECRET"));
    c = pick(without({"IDENTITY_SERVER_THUMBPRINT", "IDENTITY_HEADER", "MSI_SECRET"}));
    CHECK(c.source->name() == "cloud-shell");
    c = pick(
        without({"IDENTITY_SERVER_THUMBPRINT", "IDENTITY_HEADER", "MSI_SECRET", "MSI_ENDPOINT"}));
    CHECK(c.source->name() == "azure-arc");
    CHECK(contains(c.why, "IMDS_ENDPOINT"));
    auto no_arc_env = without({"IDENTITY_SERVER_THUMBPRINT", "IDENTITY_HEADER", "MSI_SECRET",
                               "MSI_ENDPOINT", "IDENTITY_ENDPOINT", "IMDS_ENDPOINT"});
    himds = true;
    c = pick(no_arc_env);
    CHECK(c.source->name() == "azure-arc");
    CHECK(contains(c.why, arc_himds_path));
    CHECK(contains(c.why, "40342"));
    himds = false;
    c = pick(no_arc_env);
    CHECK(c.source->name() == "workload-identity");
    CHECK(contains(c.why, "AZURE_FEDERATED_TOKEN_FILE"));
    auto partial = no_arc_env;
    partial.erase("AZURE_TENANT_ID");
    c = pick(partial);
    CHECK(c.source->name() == "imds");
    CHECK(contains(c.why, "169.254.169.254"));
    c = pick({});
    CHECK(c.source->name() == "imds");
    // IDENTITY_ENDPOINT alone selects nothing in particular.
    c = pick({{"IDENTITY_ENDPOINT", "http://x"}});
    CHECK(c.source->name() == "imds");
}

TEST_CASE("sources: configured sources", "[unit][sources][auto]") {
    asio::io_context ioc;
    auto tls = make_client_tls_context("");
    identity_config cfg;
    file_probe none = [](const char*) { return false; };
    auto pick = [&](std::map<std::string, std::string> vars) {
        return make_token_source(cfg, fake_env(std::move(vars)), ioc.get_executor(), tls, none);
    };
    cfg.source = identity_source_kind::azure_arc;
    auto c = pick({});
    CHECK(c.source->name() == "azure-arc");
    cfg.source = identity_source_kind::azure_cli;
    c = pick({{"MSIPROXY_AZ_PATH", "/opt/fake/az"}});
    CHECK(c.source->name() == "azure-cli");
    CHECK(contains(c.why, "/opt/fake/az"));
    cfg.source = identity_source_kind::workload_identity;
    CHECK_THROWS(pick({}));
    c = pick({{"AZURE_TENANT_ID", "t"}, {"AZURE_FEDERATED_TOKEN_FILE", "/f"}});
    CHECK(c.source->name() == "workload-identity");
    CHECK_THROWS_WITH(pick({{"AZURE_TENANT_ID", "t"},
                            {"AZURE_FEDERATED_TOKEN_FILE", "/f"},
                            {"AZURE_AUTHORITY_HOST", "http://login.example/"}}),
                      Catch::Contains("https"));
    // [identity] endpoint may be http (tests, emulators) even for workload identity.
    cfg.endpoint = "http://127.0.0.1:1/token";
    c = pick({{"AZURE_TENANT_ID", "t"}, {"AZURE_FEDERATED_TOKEN_FILE", "/f"}});
    CHECK(contains(c.why, "[identity] endpoint"));
    cfg.endpoint.clear();
    cfg.source = identity_source_kind::app_service;
    c = pick({{"MSI_ENDPOINT", "http://127.0.0.1:1/msi"}, {"MSI_SECRET", "s"}});
    CHECK(c.source->name() == "app-service-2017");
    c = pick({{"IDENTITY_ENDPOINT", "http://127.0.0.1:1/id"}, {"IDENTITY_HEADER", "h"}});
    CHECK(c.source->name() == "app-service");
    CHECK_THROWS(pick({}));
    cfg.source = identity_source_kind::auto_detect;
    CHECK_THROWS_WITH(pick({{"IDENTITY_ENDPOINT", "https://127.0.0.1:2377/t"},
                            {"IDENTITY_HEADER", "h"},
                            {"IDENTITY_SERVER_THUMBPRINT", "nope"}}),
                      Catch::Contains("THUMBPRINT"));
}

// ---------------------------------------------------------------------------------------------
// JWT claims

namespace {

std::string b64url(std::string_view in) {
    static constexpr char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string out;
    std::uint32_t acc = 0;
    int bits = 0;
    for (unsigned char c : in) {
        acc = (acc << 8) | c;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out += a[(acc >> bits) & 63];
        }
    }
    if (bits > 0) out += a[(acc << (6 - bits)) & 63];
    return out;
}

std::string make_jwt(const std::string& payload) {
    return b64url(R"({"typ":"JWT","alg":"RS256"})") + "." + b64url(payload) + ".c2ln";
}

}  // namespace

TEST_CASE("jwt: base64url", "[unit][jwt]") {
    CHECK(base64url_decode("") == std::string());
    CHECK(base64url_decode("Zg") == std::string("f"));
    CHECK(base64url_decode("Zm8") == std::string("fo"));
    CHECK(base64url_decode("Zm9v") == std::string("foo"));
    CHECK(base64url_decode("Zm9vYg==") == std::string("foob"));
    CHECK(base64url_decode("-_8") == std::string("\xfb\xff"));
    CHECK_FALSE(base64url_decode("Zm9vY"));  // 5 chars: impossible length
    CHECK_FALSE(base64url_decode("Zm+v"));   // base64, not base64url
    CHECK_FALSE(base64url_decode("Zm/v"));
    CHECK_FALSE(base64url_decode("Zm 9v"));
    CHECK_FALSE(base64url_decode(std::string_view("Zm\0v", 4)));
}

TEST_CASE("jwt: claims of an Entra access token", "[unit][jwt]") {
    auto c = decode_jwt_claims(make_jwt(
        R"({"aud":"https://vault.azure.net","iss":"https://sts.windows.net/t/","tid":"t","oid":"o",)"
        R"("appid":"a","roles":["r1","r2"],"exp":1800000000,"nbf":1799990000,"scp":"User.Read  Mail.Read"})"));
    REQUIRE(c);
    CHECK(c->aud == std::vector<std::string>{"https://vault.azure.net"});
    CHECK(c->iss == "https://sts.windows.net/t/");
    CHECK(c->tid == "t");
    CHECK(c->oid == "o");
    CHECK(c->appid == "a");
    CHECK(c->roles == std::vector<std::string>{"r1", "r2"});
    CHECK(c->exp == 1800000000);
    CHECK(c->nbf == 1799990000);
    CHECK(c->scp == std::vector<std::string>{"User.Read", "Mail.Read"});

    auto v2 =
        decode_jwt_claims(make_jwt(R"({"aud":["a","b"],"azp":"z","exp":1.8e9,"roles":"one"})"));
    REQUIRE(v2);
    CHECK(v2->aud == std::vector<std::string>{"a", "b"});
    CHECK(v2->azp == "z");
    CHECK(v2->exp == 1800000000);
    CHECK(v2->roles == std::vector<std::string>{"one"});

    // Wrong types are ignored, not fatal.
    auto odd = decode_jwt_claims(
        make_jwt(R"({"aud":7,"iss":["x"],"exp":"soon","roles":[1,"r"],"exp2":1e300})"));
    REQUIRE(odd);
    CHECK(odd->aud.empty());
    CHECK(odd->iss.empty());
    CHECK_FALSE(odd->exp);
    CHECK(odd->roles == std::vector<std::string>{"r"});
    auto huge = decode_jwt_claims(make_jwt(R"({"exp":1e300})"));
    REQUIRE(huge);
    CHECK_FALSE(huge->exp);
}

TEST_CASE("jwt: malformed tokens are not JWTs", "[unit][jwt]") {
    const std::string header = b64url(R"({"alg":"none"})");
    const std::string payload = b64url(R"({"aud":"x"})");
    for (const std::string& bad : std::vector<std::string>{
             "",
             ".",
             "..",
             "opaque-token",
             header + "." + payload,
             header + "." + payload + ".s.t",  // JWE-like, 5 parts
             header + "." + payload + ".s.t.u",
             "%%%." + payload + ".s",  // bad base64url
             header + ".%%%.s",
             header + "." + b64url("not json") + ".s",
             header + "." + b64url("[1,2]") + ".s",          // JSON, not an object
             header + "." + b64url(R"({"aud":"x")") + ".s",  // truncated JSON
             b64url("[]") + "." + payload + ".s",            // header not an object
             header + "." + payload.substr(0, payload.size() - (payload.size() % 4 == 1 ? 0 : 1)) +
                 "x.s",
         }) {
        INFO(bad);
        CHECK_FALSE(decode_jwt_claims(bad));
    }
    CHECK(decode_jwt_claims(header + "." + payload + "."));  // unsigned JWS still has claims
}

// ---------------------------------------------------------------------------------------------
// msiproxy token

TEST_CASE("token diagnostic: prints source, expiry and claims", "[unit][sources][diagnostic]") {
    asio::io_context server_ioc;
    fake_token_endpoint fake(server_ioc);
    const std::string jwt = make_jwt(
        R"({"aud":"https://vault.azure.net","iss":"https://sts.windows.net/t/","tid":"t","oid":"o","appid":"a","roles":["Reader"],"exp":4102444800})");
    fake.fallback.body = fake_token_endpoint::token_body(jwt, 3600);
    std::thread server([&] { server_ioc.run(); });

    config cfg;
    cfg.identity.source = identity_source_kind::imds;
    cfg.identity.endpoint = fake.url("/metadata/identity/oauth2/token");
    token_diagnostic_options opts;
    opts.resource = "https://vault.azure.net/.default";
    std::ostringstream out, err;
    int rc = run_token_diagnostic(cfg, opts, fake_env({}), out, err);
    INFO(err.str());
    CHECK(rc == 0);
    const std::string text = out.str();
    CHECK(contains(text, "source: imds (source = \"imds\" in the config"));
    CHECK(contains(text, "identity: system"));
    CHECK(contains(text, "resource: https://vault.azure.net\n"));
    CHECK(contains(text, "expires: 20"));
    CHECK(contains(text, "  aud: https://vault.azure.net\n"));
    CHECK(contains(text, "  tid: t\n"));
    CHECK(contains(text, "  oid: o\n"));
    CHECK(contains(text, "  appid: a\n"));
    CHECK(contains(text, "  roles: Reader\n"));
    CHECK(contains(text, "  exp: 4102444800 (2100-01-01T00:00:00Z)\n"));
    CHECK_FALSE(contains(text, jwt));  // only with --raw

    opts.raw = true;
    opts.client_id = "cid";
    std::ostringstream out2, err2;
    CHECK(run_token_diagnostic(cfg, opts, fake_env({}), out2, err2) == 0);
    CHECK(contains(out2.str(), "token: " + jwt + "\n"));
    CHECK(contains(out2.str(), "identity: client_id=cid"));

    fake.fallback.body = fake_token_endpoint::token_body("opaque", 3600);
    std::ostringstream out3, err3;
    CHECK(run_token_diagnostic(cfg, opts, fake_env({}), out3, err3) == 0);
    CHECK(contains(out3.str(), "claims: not a JWT"));

    fake.fallback = canned_reply{
        400, {}, R"({"error":"invalid_request","error_description":"Identity not found"})"};
    std::ostringstream out4, err4;
    CHECK(run_token_diagnostic(cfg, opts, fake_env({}), out4, err4) == 1);
    CHECK(contains(err4.str(), "Identity not found"));

    asio::post(server_ioc, [&] { fake.stop(); });
    server.join();
    REQUIRE(fake.requests().size() == 4);
    CHECK(fake.requests()[0].query_value("resource") == "https://vault.azure.net");
    CHECK(fake.requests()[1].query_value("client_id") == "cid");
}

TEST_CASE("token diagnostic: a source that cannot be built exits 1",
          "[unit][sources][diagnostic]") {
    config cfg;
    cfg.identity.source = identity_source_kind::workload_identity;
    token_diagnostic_options opts;
    opts.resource = "r";
    std::ostringstream out, err;
    CHECK(run_token_diagnostic(cfg, opts, fake_env({}), out, err) == 1);
    CHECK(contains(err.str(), "AZURE_FEDERATED_TOKEN_FILE"));
}
