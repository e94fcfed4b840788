// The daemon's wiring: listeners, accept loop with back-pressure, token cache, admin server,
// signals (SIGTERM/SIGINT drain, SIGHUP reload), sd_notify and the watchdog.
#include "app.hpp"

#include <atomic>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/bind_cancellation_slot.hpp>
#include <boost/asio/cancellation_signal.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <spdlog/spdlog.h>

#include "admin/admin_server.hpp"
#include "admin/metrics.hpp"
#include "common/systemd_notify.hpp"
#include "identity/token_cache.hpp"
#include "listener/session.hpp"
#include "listener/worker.hpp"
#include "log/logging.hpp"
#include "upstream/tls.hpp"
#include "version.hpp"

namespace msiproxy {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using namespace std::chrono_literals;
constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);

namespace {

// Logs what escaped a detached coroutine instead of losing it; one connection's bug never
// takes the process down.
auto log_exceptions(const char* what) {
    return [what](std::exception_ptr p) {
        if (!p) return;
        try {
            std::rethrow_exception(p);
        } catch (const std::exception& e) {
            spdlog::error("{}: {}", what, e.what());
        }
    };
}

tcp::acceptor bind_listener(asio::io_context& ioc, const listen_address& where, const char* name) {
    error_code ec;
    auto addr = asio::ip::make_address(where.host == "localhost" ? "127.0.0.1" : where.host, ec);
    if (ec) throw bind_error(std::string(name) + ": invalid address '" + where.host + "'");
    tcp::endpoint ep(addr, where.port);
    tcp::acceptor acc(ioc);
    acc.open(ep.protocol(), ec);
    if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        throw bind_error(std::string("cannot listen on ") + where.to_string() + " (" + name +
                         "): " + ec.message());
    }
    return acc;
}

}  // namespace

struct app::impl {
    impl(config cfg, options o)
        : opts(o),
          tls(make_client_tls_context(cfg.upstream.ca_file)),
          signals(ioc),
          watchdog(ioc),
          initial(std::move(cfg)) {}

    // Declared first, destroyed last: every member below holds I/O objects of it.
    asio::io_context ioc{1};
    options opts;
    asio::ssl::context tls;
    metrics stats;
    std::shared_ptr<token_source> source;
    std::unique_ptr<token_cache> tokens;
    std::unique_ptr<upstream_pool> pool;
    worker_context worker;
    std::optional<tcp::acceptor> proxy_acceptor;
    std::optional<tcp::acceptor> admin_acceptor;
    std::vector<tcp::endpoint> own_endpoints;
    admin_context admin;
    asio::signal_set signals;
    asio::steady_timer watchdog;
    asio::cancellation_signal admin_cancel;
    config initial;
    std::vector<token_key> previous_keys;
    bool stopping = false;
    bool started = false;

    void start();
    void begin_stop();
    void apply(config cfg);
    void reload_from_file();
    asio::awaitable<void> accept_loop();
    asio::awaitable<void> drain_then_exit();
    asio::awaitable<void> signal_loop();
    asio::awaitable<void> watchdog_loop(std::chrono::microseconds interval);
    void notify_status();
};

void app::impl::start() {
    const config& cfg = initial;
    proxy_acceptor.emplace(bind_listener(ioc, cfg.proxy.listen, "proxy.listen"));
    own_endpoints.push_back(proxy_acceptor->local_endpoint());
    if (!cfg.admin.listen.empty()) {
        admin_acceptor.emplace(bind_listener(ioc, cfg.admin.listen, "admin.listen"));
        own_endpoints.push_back(admin_acceptor->local_endpoint());
    }

    auto env = process_env();
    auto choice = make_token_source(cfg.identity, env, ioc.get_executor(), tls);
    spdlog::info("identity source: {} ({})", choice.source->name(), choice.why);
    source = std::move(choice.source);
    cache_options co;
    co.backoff_cap = cfg.identity.retry_max;
    co.fetch_timeout = cfg.identity.timeout;
    tokens = std::make_unique<token_cache>(ioc.get_executor(), source, &stats, co);
    pool_options po;
    po.connect_timeout = cfg.upstream.connect_timeout;
    pool = std::make_unique<upstream_pool>(ioc.get_executor(), tls, po);

    worker.ex = ioc.get_executor();
    worker.pool = pool.get();
    worker.tokens = tokens.get();
    worker.stats = &stats;
    previous_keys = route_token_keys(initial, env);
    tokens->set_keys(previous_keys);
    worker.current = std::make_shared<const runtime>(initial, env, own_endpoints, *tokens);

    admin.stats = &stats;
    admin.tokens = [this] {
        // Only the keys the current config needs (a reload may have left others behind).
        auto all = tokens->status();
        std::vector<token_status> out;
        for (auto& s : all) {
            for (const auto& k : worker.current->route_keys) {
                if (s.resource == k.resource && s.identity == k.identity.describe()) {
                    out.push_back(std::move(s));
                    break;
                }
            }
        }
        return out;
    };
    admin.listening = [this] { return proxy_acceptor && proxy_acceptor->is_open() && !stopping; };

    asio::co_spawn(ioc, accept_loop(), log_exceptions("proxy listener"));
    if (admin_acceptor) {
        asio::co_spawn(ioc, run_admin_server(std::move(*admin_acceptor), admin),
                       asio::bind_cancellation_slot(admin_cancel.slot(),
                                                    log_exceptions("admin listener")));
        admin_acceptor.reset();
    }
    if (opts.handle_signals) {
        signals.add(SIGTERM);
        signals.add(SIGINT);
        signals.add(SIGHUP);
        asio::co_spawn(ioc, signal_loop(), log_exceptions("signals"));
    }
    if (opts.notify_systemd) {
        if (auto wd = sd_watchdog_interval()) {
            asio::co_spawn(ioc, watchdog_loop(*wd), log_exceptions("watchdog"));
        }
    }
    started = true;
    spdlog::info("msiproxy {} listening on {} with {} route(s)", MSIPROXY_VERSION,
                 cfg.proxy.listen.host + ":" + std::to_string(proxy_acceptor->local_endpoint().port()),
                 cfg.routes.size());
    if (opts.notify_systemd) {
        sd_notify_message("READY=1");
        notify_status();
    }
}

void app::impl::notify_status() {
    if (!opts.notify_systemd) return;
    sd_notify_message("STATUS=serving " + std::to_string(worker.current->cfg.routes.size()) +
                      " route(s), " + std::to_string(worker.sessions.size()) + " connection(s)");
}

asio::awaitable<void> app::impl::accept_loop() {
    asio::steady_timer pause(ioc);
    while (proxy_acceptor && proxy_acceptor->is_open()) {
        const auto limit = worker.current->cfg.proxy.max_connections;
        if (worker.sessions.size() >= limit) {
            // Back-pressure: leave new connections in the kernel's backlog until one ends.
            pause.expires_after(5ms);
            co_await pause.async_wait(use_tuple);
            continue;
        }
        auto [ec, socket] = co_await proxy_acceptor->async_accept(use_tuple);
        if (ec == asio::error::operation_aborted || !proxy_acceptor->is_open()) break;
        if (ec) {
            // EMFILE and friends: log, breathe, and keep serving the connections we have.
            log_rate_limited("accept", spdlog::level::err, "accept failed: " + ec.message());
            pause.expires_after(100ms);
            co_await pause.async_wait(use_tuple);
            continue;
        }
        asio::co_spawn(ioc, run_session(std::move(socket), worker), log_exceptions("session"));
    }
}

void app::impl::begin_stop() {
    if (stopping) {
        // A second SIGTERM/SIGINT while draining: stop now.
        spdlog::warn("second stop request: closing {} connection(s) now", worker.sessions.size());
        for (auto* s : std::vector<session_handle*>(worker.sessions.begin(), worker.sessions.end())) {
            s->abort();
        }
        return;
    }
    stopping = true;
    error_code ec;
    if (proxy_acceptor) proxy_acceptor->close(ec);
    if (opts.notify_systemd) sd_notify_message("STOPPING=1");
    spdlog::info("stopping: no new connections; {} in flight, grace {} ms", worker.sessions.size(),
                 worker.current->cfg.proxy.shutdown_grace.count());
    worker.draining = true;
    for (auto* s : std::vector<session_handle*>(worker.sessions.begin(), worker.sessions.end())) {
        s->drain();
    }
    asio::co_spawn(ioc, drain_then_exit(), log_exceptions("shutdown"));
}

asio::awaitable<void> app::impl::drain_then_exit() {
    const auto deadline = std::chrono::steady_clock::now() + worker.current->cfg.proxy.shutdown_grace;
    asio::steady_timer t(ioc);
    while (!worker.sessions.empty() && std::chrono::steady_clock::now() < deadline) {
        t.expires_after(10ms);
        co_await t.async_wait(use_tuple);
    }
    if (!worker.sessions.empty()) {
        spdlog::warn("shutdown grace over: closing {} connection(s)", worker.sessions.size());
        for (auto* s : std::vector<session_handle*>(worker.sessions.begin(), worker.sessions.end())) {
            s->abort();
        }
    }
    tokens->shutdown();
    pool->shutdown();
    error_code ec;
    signals.cancel(ec);
    watchdog.cancel();
    // /healthz answered until now, so that a supervisor saw the drain; the admin server and
    // its connections stop here.
    admin_cancel.emit(asio::cancellation_type::all);
    // Aborted sessions unwind on their own; do not wait on them long.
    t.expires_after(500ms);
    co_await t.async_wait(use_tuple);
    ioc.stop();
}

asio::awaitable<void> app::impl::signal_loop() {
    for (;;) {
        auto [ec, sig] = co_await signals.async_wait(use_tuple);
        if (ec) co_return;
        if (sig == SIGHUP) {
            reload_from_file();
        } else {
            spdlog::info("received {}", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            begin_stop();
        }
    }
}

asio::awaitable<void> app::impl::watchdog_loop(std::chrono::microseconds interval) {
    for (;;) {
        sd_notify_message("WATCHDOG=1");
        watchdog.expires_after(interval / 2);
        auto [ec] = co_await watchdog.async_wait(use_tuple);
        if (ec || stopping) co_return;
    }
}

void app::impl::reload_from_file() {
    const std::string path = worker.current->cfg.path;
    spdlog::info("SIGHUP: reloading {}", path);
    if (opts.notify_systemd) sd_notify_reloading();
    try {
        apply(load_config_file(path));
    } catch (const config_exception& e) {
        for (const auto& err : e.errors()) spdlog::error("reload rejected: {}", err.format());
        spdlog::error("keeping the running configuration");
    } catch (const std::exception& e) {
        spdlog::error("reload rejected: {}; keeping the running configuration", e.what());
    }
    if (opts.notify_systemd) {
        sd_notify_message("READY=1");
        notify_status();
    }
}

void app::impl::apply(config cfg) {
    const auto& old = worker.current->cfg;
    if (cfg.proxy.listen.to_string() != old.proxy.listen.to_string() ||
        cfg.admin.listen.to_string() != old.admin.listen.to_string() ||
        cfg.identity.source != old.identity.source || cfg.identity.endpoint != old.identity.endpoint ||
        cfg.upstream.ca_file != old.upstream.ca_file) {
        spdlog::warn("listen addresses, [identity] source/endpoint and upstream.ca_file change "
                     "only on restart; the other settings apply now");
        cfg.proxy.listen = old.proxy.listen;
        cfg.admin.listen = old.admin.listen;
        cfg.identity.source = old.identity.source;
        cfg.identity.endpoint = old.identity.endpoint;
        cfg.upstream.ca_file = old.upstream.ca_file;
    }
    setup_logging(cfg.log);
    auto env = process_env();
    // Keys of the previous generation stay until the next reload: requests still in flight
    // on it may need them (they hold its slots, so they would not break, only stop refreshing).
    auto keys = route_token_keys(cfg, env);
    auto wanted = keys;
    wanted.insert(wanted.end(), previous_keys.begin(), previous_keys.end());
    tokens->set_keys(wanted);
    previous_keys = std::move(keys);
    worker.current = std::make_shared<const runtime>(std::move(cfg), env, own_endpoints, *tokens);
    spdlog::info("configuration reloaded: {} route(s)", worker.current->cfg.routes.size());
}

app::app(config cfg, options opts) : impl_(std::make_unique<impl>(std::move(cfg), opts)) {}

app::~app() {
    if (!impl_) return;
    // Let whatever still runs see its sockets closed, so coroutine frames end before the
    // objects they point into are destroyed.
    auto& i = *impl_;
    if (i.started) {
        for (auto* s : std::vector<session_handle*>(i.worker.sessions.begin(), i.worker.sessions.end())) {
            s->abort();
        }
        if (i.tokens) i.tokens->shutdown();
        if (i.pool) i.pool->shutdown();
        error_code ec;
        if (i.proxy_acceptor) i.proxy_acceptor->close(ec);
        i.ioc.restart();
        i.ioc.run_for(200ms);
    }
}

void app::start() { impl_->start(); }

std::uint16_t app::proxy_port() const {
    return impl_->own_endpoints.empty() ? 0 : impl_->own_endpoints[0].port();
}

std::uint16_t app::admin_port() const {
    return impl_->own_endpoints.size() < 2 ? 0 : impl_->own_endpoints[1].port();
}

int app::run() {
    impl_->ioc.run();
    spdlog::info("stopped");
    return 0;
}

void app::stop() {
    asio::post(impl_->ioc, [i = impl_.get()] { i->begin_stop(); });
}

void app::reload(config cfg) {
    asio::post(impl_->ioc, [i = impl_.get(), c = std::make_shared<config>(std::move(cfg))]() mutable {
        if (i->opts.notify_systemd) sd_notify_reloading();
        i->apply(std::move(*c));
        if (i->opts.notify_systemd) sd_notify_message("READY=1");
    });
}

}  // namespace msiproxy
