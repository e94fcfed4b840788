// Source selection: the configured one, or `auto` detection in the Azure SDKs' order
// (azure-identity.md section 1.1), and the effective identity of a route.
#include "identity/token_source.hpp"

#include <cstdlib>
#include <stdexcept>

#include "identity/sources/app_service.hpp"
#include "identity/sources/imds.hpp"

namespace msiproxy {

env_lookup process_env() {
    return [](const char* name) {
        const char* v = std::getenv(name);
        return std::string(v ? v : "");
    };
}

identity_selector effective_identity(const identity_selector& route_sel,
                                     const identity_selector& global_sel, const env_lookup& env) {
    if (!route_sel.empty()) return route_sel;
    if (!global_sel.empty()) return global_sel;
    identity_selector s;
    s.client_id = env("AZURE_CLIENT_ID");
    return s;
}

source_choice make_token_source(const identity_config& cfg, const env_lookup& env,
                                boost::asio::any_io_executor ex, boost::asio::ssl::context& tls) {
    auto pick = [&](const std::string& from_env, const char* fallback) {
        if (!cfg.endpoint.empty()) return cfg.endpoint;
        return from_env.empty() ? std::string(fallback) : from_env;
    };
    // IMDS's endpoint: AZURE_POD_IDENTITY_AUTHORITY_HOST replaces scheme and authority.
    auto imds_endpoint = [&] {
        std::string host = env("AZURE_POD_IDENTITY_AUTHORITY_HOST");
        while (!host.empty() && host.back() == '/') host.pop_back();
        return pick(host.empty() ? "" : host + "/metadata/identity/oauth2/token",
                    imds_default_endpoint);
    };
    auto unsupported = [](const char* what) {
        return std::runtime_error(std::string("identity source ") + what +
                                  " is not supported by this build yet; set [identity] source = "
                                  "\"imds\" or \"app-service\"");
    };
    switch (cfg.source) {
        case identity_source_kind::imds:
            return {make_imds_source(ex, tls, imds_endpoint()), "source = \"imds\" in the config"};
        case identity_source_kind::app_service: {
            std::string ep = pick(env("IDENTITY_ENDPOINT"), "");
            if (ep.empty()) {
                throw std::runtime_error(
                    "source = \"app-service\" needs IDENTITY_ENDPOINT (or [identity] endpoint)");
            }
            return {make_app_service_source(ex, tls, ep, env), "source = \"app-service\" in the config"};
        }
        case identity_source_kind::azure_arc: throw unsupported("azure-arc");
        case identity_source_kind::workload_identity: throw unsupported("workload-identity");
        case identity_source_kind::azure_cli: throw unsupported("azure-cli");
        case identity_source_kind::auto_detect: break;
    }

    // auto: first match wins, as in MSAL and the Azure SDKs.
    const bool id_ep = !env("IDENTITY_ENDPOINT").empty();
    const bool id_hdr = !env("IDENTITY_HEADER").empty();
    if (id_ep && id_hdr && !env("IDENTITY_SERVER_THUMBPRINT").empty()) {
        throw unsupported("service-fabric (IDENTITY_SERVER_THUMBPRINT is set)");
    }
    if (id_ep && id_hdr) {
        return {make_app_service_source(ex, tls, pick(env("IDENTITY_ENDPOINT"), ""), env),
                "auto: IDENTITY_ENDPOINT and IDENTITY_HEADER are set (App Service 2019-08-01)"};
    }
    if (!env("MSI_ENDPOINT").empty()) throw unsupported("app-service 2017 / cloud shell (MSI_ENDPOINT is set)");
    if (id_ep && !env("IMDS_ENDPOINT").empty()) throw unsupported("azure-arc (IMDS_ENDPOINT is set)");
    if (!env("AZURE_FEDERATED_TOKEN_FILE").empty() && !env("AZURE_CLIENT_ID").empty() &&
        !env("AZURE_TENANT_ID").empty()) {
        throw unsupported("workload-identity (AZURE_FEDERATED_TOKEN_FILE is set)");
    }
    std::string ep = imds_endpoint();
    return {make_imds_source(ex, tls, ep),
            "auto: no App Service, Arc, Cloud Shell or workload identity variables set, "
            "using the VM's IMDS at " + ep};
}

}  // namespace msiproxy
