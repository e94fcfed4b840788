// The token diagnostic: source selection and fetch as the daemon would do them, then a report.
#include "identity/token_diagnostic.hpp"

#include <exception>
#include <ostream>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>

#include "common/time_format.hpp"
#include "identity/jwt.hpp"
#include "upstream/tls.hpp"

namespace msiproxy {

namespace {

std::string join(const std::vector<std::string>& v) {
    std::string out;
    for (const auto& s : v)
        out += (out.empty() ? "" : ", ") + s;
    return out.empty() ? "-" : out;
}

std::string or_dash(const std::string& s) {
    return s.empty() ? "-" : s;
}

std::string describe_epoch(const std::optional<std::int64_t>& t) {
    if (!t) return "-";
    return std::to_string(*t) + " (" + to_rfc3339(sys_time(std::chrono::seconds(*t))) + ")";
}

std::string describe_remaining(std::chrono::system_clock::duration d) {
    auto s = std::chrono::duration_cast<std::chrono::seconds>(d).count();
    if (s < 0) return "expired";
    return "in " + std::to_string(s / 3600) + "h" + std::to_string(s % 3600 / 60) + "m";
}

}  // namespace

int run_token_diagnostic(const config& cfg, const token_diagnostic_options& opts,
                         const env_lookup& env, std::ostream& out, std::ostream& err) {
    std::string resource = opts.resource;
    if (resource.ends_with("/.default")) resource.resize(resource.size() - 9);
    if (resource.empty()) {
        err << "msiproxy token: RESOURCE must not be empty\n";
        return 1;
    }
    identity_selector route_sel;
    route_sel.client_id = opts.client_id;
    const identity_selector identity = effective_identity(route_sel, cfg.identity.selector, env);

    boost::asio::io_context ioc;
    std::optional<fetch_outcome> outcome;
    std::string failure;
    try {
        auto tls = make_client_tls_context(cfg.upstream.ca_file);
        auto choice = make_token_source(cfg.identity, env, ioc.get_executor(), tls);
        out << "source: " << choice.source->name() << " (" << choice.why << ")\n";
        out << "identity: " << identity.describe() << "\n";
        out << "resource: " << resource << "\n";
        boost::asio::co_spawn(ioc, choice.source->fetch(resource, identity),
                              [&](std::exception_ptr e, fetch_outcome o) {
                                  if (e) {
                                      try {
                                          std::rethrow_exception(e);
                                      } catch (const std::exception& ex) {
                                          failure = ex.what();
                                      }
                                      return;
                                  }
                                  outcome = std::move(o);
                              });
        ioc.run();
    } catch (const std::exception& e) {
        failure = e.what();
    }
    if (!failure.empty() || !outcome) {
        err << "msiproxy token: " << (failure.empty() ? "no answer" : failure) << "\n";
        return 1;
    }
    if (auto* f = std::get_if<fetch_failure>(&*outcome)) {
        err << "msiproxy token: " << to_string(f->kind) << ": " << f->message << "\n";
        return 1;
    }
    const auto& t = std::get<access_token>(*outcome);
    out << "expires: " << to_rfc3339(t.expires_on) << " ("
        << describe_remaining(t.expires_on - std::chrono::system_clock::now()) << ")\n";
    if (auto c = decode_jwt_claims(t.value)) {
        out << "claims:\n"
            << "  aud: " << join(c->aud) << "\n"
            << "  iss: " << or_dash(c->iss) << "\n"
            << "  tid: " << or_dash(c->tid) << "\n"
            << "  oid: " << or_dash(c->oid) << "\n"
            << "  appid: " << or_dash(c->appid.empty() ? c->azp : c->appid) << "\n"
            << "  roles: " << join(c->roles) << "\n"
            << "  exp: " << describe_epoch(c->exp) << "\n";
        if (!c->scp.empty()) out << "  scp: " << join(c->scp) << "\n";
    } else {
        out << "claims: not a JWT\n";
    }
    if (opts.raw) out << "token: " << t.value << "\n";
    return 0;
}

}  // namespace msiproxy
