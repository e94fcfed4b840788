// AKS workload identity: an Entra v2 client-credentials grant whose client assertion is the
// federated token file Kubernetes projects and rotates (azure-identity.md section 6).
#pragma once

#include "identity/token_source.hpp"

namespace msiproxy {

inline constexpr const char* entra_default_authority = "https://login.microsoftonline.com/";

struct workload_identity_settings {
    std::string authority_host = entra_default_authority;  // AZURE_AUTHORITY_HOST; https only
    std::string tenant_id;                                 // AZURE_TENANT_ID
    std::string client_id;   // AZURE_CLIENT_ID: used when the route names no client id
    std::string token_file;  // AZURE_FEDERATED_TOKEN_FILE, read on every fetch
    std::string endpoint;    // [identity] endpoint: full token URL, may be http (tests, emulators)
};

// Throws std::runtime_error when the settings cannot work: no tenant or token file, a tenant
// that is not a plain name, an authority that is not https.
std::unique_ptr<token_source> make_workload_identity_source(boost::asio::any_io_executor ex,
                                                            boost::asio::ssl::context& tls,
                                                            workload_identity_settings settings);

// Classifies an Entra error answer ({"error","error_description"}): invalid_client,
// unauthorized_client, invalid_scope and the like are permanent; an expired or not yet valid
// assertion (invalid_grant) is retryable, since the token file is rotated; 429 and 5xx retryable.
fetch_failure classify_entra_failure(unsigned status, std::string_view body,
                                     std::string_view retry_after_header);

}  // namespace msiproxy
