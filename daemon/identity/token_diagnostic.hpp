// `msiproxy token RESOURCE`: one fetch from the configured source, described for an operator
// (source, expiry, JWT claims); the token itself only on request.
#pragma once

#include <iosfwd>
#include <string>

#include "config/config.hpp"
#include "identity/token_source.hpp"

namespace msiproxy {

struct token_diagnostic_options {
    std::string resource;   // a trailing "/.default" (a scope) is removed
    std::string client_id;  // empty: [identity]'s selector, else AZURE_CLIENT_ID, else system
    bool raw = false;       // print the token too
};

// Builds the source from cfg.identity, fetches one token on a private io_context (TLS as
// configured in [upstream] ca_file) and prints the report to `out`. Returns 0 on success; 1 with
// the reason on `err` when the source cannot be built or the fetch fails. Blocks.
int run_token_diagnostic(const config& cfg, const token_diagnostic_options& opts,
                         const env_lookup& env, std::ostream& out, std::ostream& err);

}  // namespace msiproxy
