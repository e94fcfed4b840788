// Source selection: the configured one, or `auto` detection in the Azure SDKs' order
// (azure-identity.md section 1.1), and the effective identity of a route.
#include "identity/token_source.hpp"

#include <cstdlib>
#include <stdexcept>

#include <sys/stat.h>

#include "identity/sources/app_service.hpp"
#include "identity/sources/app_service_2017.hpp"
#include "identity/sources/azure_arc.hpp"
#include "identity/sources/azure_cli.hpp"
#include "identity/sources/cloud_shell.hpp"
#include "identity/sources/imds.hpp"
#include "identity/sources/service_fabric.hpp"
#include "identity/sources/workload_identity.hpp"

namespace msiproxy {

env_lookup process_env() {
    return [](const char* name) {
        const char* v = std::getenv(name);
        return std::string(v ? v : "");
    };
}

file_probe process_files() {
    return [](const char* path) {
        struct stat st {};
        return ::stat(path, &st) == 0;
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
    return make_token_source(cfg, env, std::move(ex), tls, process_files());
}

source_choice make_token_source(const identity_config& cfg, const env_lookup& env,
                                boost::asio::any_io_executor ex, boost::asio::ssl::context& tls,
                                const file_probe& exists) {
    auto pick = [&](const std::string& from_env, const char* fallback) {
        if (!cfg.endpoint.empty()) return cfg.endpoint;
        return from_env.empty() ? std::string(fallback) : from_env;
    };
    const std::string override_note =
        cfg.endpoint.empty() ? "" : "; endpoint overridden by [identity] endpoint";
    // IMDS's endpoint: AZURE_POD_IDENTITY_AUTHORITY_HOST replaces scheme and authority.
    auto imds_endpoint = [&] {
        std::string host = env("AZURE_POD_IDENTITY_AUTHORITY_HOST");
        while (!host.empty() && host.back() == '/')
            host.pop_back();
        return pick(host.empty() ? "" : host + "/metadata/identity/oauth2/token",
                    imds_default_endpoint);
    };
    auto workload = [&] {
        workload_identity_settings s;
        if (std::string a = env("AZURE_AUTHORITY_HOST"); !a.empty()) s.authority_host = a;
        s.tenant_id = env("AZURE_TENANT_ID");
        s.client_id = env("AZURE_CLIENT_ID");
        s.token_file = env("AZURE_FEDERATED_TOKEN_FILE");
        s.endpoint = cfg.endpoint;
        return make_workload_identity_source(ex, tls, std::move(s));
    };
    auto az_path = [&] {
        std::string p = env("MSIPROXY_AZ_PATH");
        return p.empty() ? std::string("az") : p;
    };
    auto service_fabric = [&] {
        return make_service_fabric_source(ex, pick(env("IDENTITY_ENDPOINT"), ""),
                                          env("IDENTITY_SERVER_THUMBPRINT"),
                                          env("IDENTITY_API_VERSION"), env);
    };

    const bool id_ep = !env("IDENTITY_ENDPOINT").empty();
    const bool id_hdr = !env("IDENTITY_HEADER").empty();
    const bool msi_ep = !env("MSI_ENDPOINT").empty();
    const bool msi_secret = !env("MSI_SECRET").empty();

    switch (cfg.source) {
        case identity_source_kind::imds:
            return {make_imds_source(ex, tls, imds_endpoint()),
                    "source = \"imds\" in the config" + override_note};
        case identity_source_kind::app_service: {
            // Both App Service protocols: the 2019 one when its variables are there, else 2017.
            if (!id_ep && msi_ep && msi_secret && cfg.endpoint.empty()) {
                return {make_app_service_2017_source(ex, tls, env("MSI_ENDPOINT"), env),
                        "source = \"app-service\" in the config; MSI_ENDPOINT and MSI_SECRET "
                        "set (2017-09-01 protocol)"};
            }
            std::string ep = pick(env("IDENTITY_ENDPOINT"), "");
            if (ep.empty()) {
                throw std::runtime_error(
                    "source = \"app-service\" needs IDENTITY_ENDPOINT (or [identity] endpoint)");
            }
            return {make_app_service_source(ex, tls, ep, env),
                    "source = \"app-service\" in the config" + override_note};
        }
        case identity_source_kind::azure_arc:
            return {make_azure_arc_source(ex, tls,
                                          pick(env("IDENTITY_ENDPOINT"), arc_default_endpoint)),
                    "source = \"azure-arc\" in the config" + override_note};
        case identity_source_kind::workload_identity:
            return {workload(), "source = \"workload-identity\" in the config" + override_note};
        case identity_source_kind::azure_cli:
            return {make_azure_cli_source(ex, az_path()),
                    "source = \"azure-cli\" in the config, running " + az_path()};
        case identity_source_kind::auto_detect:
            break;
    }

    // auto: first match wins, as in MSAL and the Azure SDKs.
    if (id_ep && id_hdr && !env("IDENTITY_SERVER_THUMBPRINT").empty()) {
        return {service_fabric(),
                "auto: IDENTITY_ENDPOINT, IDENTITY_HEADER and IDENTITY_SERVER_THUMBPRINT are set "
                "(Service Fabric)" +
                    override_note};
    }
    if (id_ep && id_hdr) {
        return {make_app_service_source(ex, tls, pick(env("IDENTITY_ENDPOINT"), ""), env),
                "auto: IDENTITY_ENDPOINT and IDENTITY_HEADER are set (App Service 2019-08-01)" +
                    override_note};
    }
    if (msi_ep && msi_secret) {
        return {make_app_service_2017_source(ex, tls, pick(env("MSI_ENDPOINT"), ""), env),
                "auto: MSI_ENDPOINT and MSI_SECRET are set (App Service 2017 / Azure ML, "
                "2017-09-01)" +
                    override_note};
    }
    if (msi_ep) {
        return {make_cloud_shell_source(ex, tls, pick(env("MSI_ENDPOINT"), "")),
                "auto: MSI_ENDPOINT is set without MSI_SECRET (Cloud Shell)" + override_note};
    }
    if (id_ep && !env("IMDS_ENDPOINT").empty()) {
        return {make_azure_arc_source(ex, tls, pick(env("IDENTITY_ENDPOINT"), "")),
                "auto: IDENTITY_ENDPOINT and IMDS_ENDPOINT are set (Azure Arc)" + override_note};
    }
    if (exists(arc_himds_path)) {
        return {make_azure_arc_source(ex, tls, pick("", arc_default_endpoint)),
                std::string("auto: the Arc agent ") + arc_himds_path + " exists (Azure Arc at " +
                    pick("", arc_default_endpoint) + ")"};
    }
    if (!env("AZURE_FEDERATED_TOKEN_FILE").empty() && !env("AZURE_CLIENT_ID").empty() &&
        !env("AZURE_TENANT_ID").empty()) {
        return {workload(),
                "auto: AZURE_FEDERATED_TOKEN_FILE, AZURE_CLIENT_ID and AZURE_TENANT_ID are set "
                "(AKS workload identity)" +
                    override_note};
    }
    std::string ep = imds_endpoint();
    return {make_imds_source(ex, tls, ep),
            "auto: no Service Fabric, App Service, Cloud Shell, Arc or workload identity "
            "variables set, using the VM's IMDS at " +
                ep};
}

}  // namespace msiproxy
