// Entry point: command line, config, logging, then the app. Nothing else lives here.
// Exit status (INTERFACE.md): 0 clean stop, 1 invalid config, 2 bad command line, 3 cannot bind.
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>

#include "app.hpp"
#include "config/config.hpp"
#include "identity/token_diagnostic.hpp"
#include "log/logging.hpp"
#include "version.hpp"

namespace {

std::string default_config_path() {
    if (const char* env = std::getenv("MSIPROXY_CONFIG"); env && *env) return env;
    return "/etc/msiproxy/config.toml";
}

void print_config_errors(const msiproxy::config_exception& e) {
    for (const auto& err : e.errors())
        std::cerr << err.format() << '\n';
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App cli{"msiproxy: injects Azure managed-identity tokens into an app's HTTP requests"};
    std::string config_path;
    bool check = false;
    bool version = false;
    cli.add_option("-c,--config", config_path,
                   "config file (default: $MSIPROXY_CONFIG, then /etc/msiproxy/config.toml)");
    cli.add_flag("--check", check, "validate the config, print the routes, and exit 0 or 1");
    cli.add_flag("-V,--version", version, "print the version and exit");

    // `msiproxy token RESOURCE`: fetch one token with the configured identity and describe it.
    msiproxy::token_diagnostic_options token_opts;
    CLI::App* token_cmd = cli.add_subcommand(
        "token",
        "fetch one token for RESOURCE as the daemon would, print its source, expiry and "
        "claims, and exit 0 or 1");
    token_cmd->add_option("RESOURCE", token_opts.resource, "token audience (or a /.default scope)")
        ->required();
    token_cmd->add_option("--client-id", token_opts.client_id,
                          "user-assigned identity's client id (default: [identity] in the config)");
    token_cmd->add_option("-c,--config", config_path, "config file (as for the daemon)");
    token_cmd->add_flag("--raw", token_opts.raw, "also print the token itself");
    cli.require_subcommand(0, 1);
    try {
        cli.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return cli.exit(e);
    } catch (const CLI::ParseError& e) {
        cli.exit(e);
        return 2;
    }
    if (version) {
        std::cout << "msiproxy " << MSIPROXY_VERSION << '\n';
        return 0;
    }
    if (config_path.empty()) config_path = default_config_path();

    msiproxy::config cfg;
    try {
        cfg = msiproxy::load_config_file(config_path);
    } catch (const msiproxy::config_exception& e) {
        print_config_errors(e);
        return 1;
    }
    if (check) {
        std::cout << config_path << ": OK\n" << msiproxy::describe_routes(cfg);
        return 0;
    }
    if (token_cmd->parsed()) {
        // Only warnings and errors on stderr: stdout is the report.
        spdlog::set_level(spdlog::level::warn);
        return msiproxy::run_token_diagnostic(cfg, token_opts, msiproxy::process_env(), std::cout,
                                              std::cerr);
    }

    try {
        msiproxy::setup_logging(cfg.log);
        msiproxy::app a(std::move(cfg), msiproxy::app::options{});
        a.start();
        return a.run();
    } catch (const msiproxy::bind_error& e) {
        spdlog::critical("{}", e.what());
        return 3;
    } catch (const std::exception& e) {
        spdlog::critical("{}", e.what());
        return 1;
    }
}
