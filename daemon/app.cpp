// The daemon's wiring: listeners, accept loop with back-pressure, token cache, admin server,
// signals (SIGTERM/SIGINT drain, SIGHUP reload), sd_notify and the watchdog.
#include "app.hpp"

#include <atomic>
#include <functional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
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

using reuse_port = asio::detail::socket_option::boolean<SOL_SOCKET, SO_REUSEPORT>;

// shared_port: several workers listen on the same port and the kernel spreads connections
// over them (SO_REUSEPORT); set only then, so no other process can share a lone listener.
tcp::acceptor bind_listener(asio::io_context& ioc, const listen_address& where, const char* name,
                            bool shared_port = false, std::uint16_t port_override = 0) {
    error_code ec;
    auto addr = asio::ip::make_address(where.host == "localhost" ? "127.0.0.1" : where.host, ec);
    if (ec) throw bind_error(std::string(name) + ": invalid address '" + where.host + "'");
    tcp::endpoint ep(addr, port_override ? port_override : where.port);
    tcp::acceptor acc(ioc);
    acc.open(ep.protocol(), ec);
    if (!ec) acc.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec && shared_port) acc.set_option(reuse_port(true), ec);
    if (!ec) acc.bind(ep, ec);
    if (!ec) acc.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
        throw bind_error(std::string("cannot listen on ") + where.to_string() + " (" + name +
                         "): " + ec.message());
    }
    return acc;
}

}  // namespace

// One I/O thread: its event loop, listener, upstream pool and sessions (STYLE.md's worker
// model). Worker 0 runs on the thread that calls app::run() and also hosts the token cache,
// the admin server, signals and the watchdog.
struct worker {
    explicit worker(asio::io_context* shared) {
        if (!shared) owned = std::make_unique<asio::io_context>(1);
        ioc = shared ? shared : owned.get();
    }
    std::unique_ptr<asio::io_context> owned;  // workers 1..N-1
    asio::io_context* ioc;
    std::unique_ptr<upstream_pool> pool;
    worker_context ctx;
    std::optional<tcp::acceptor> acceptor;
    std::size_t max_sessions = 0;
    bool stopping = false;
    std::thread thread;

    void abort_sessions() {
        for (auto* s : std::vector<session_handle*>(ctx.sessions.begin(), ctx.sessions.end())) {
            s->abort();
        }
    }
    asio::awaitable<void> accept_loop();
    void begin_drain(std::function<void()> then);
    asio::awaitable<void> drain(std::chrono::milliseconds grace, std::function<void()> then);
};

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
    asio::ssl::context tls;  // shared by all workers: OpenSSL contexts are thread-safe
    metrics stats;           // thread-safe
    std::shared_ptr<token_source> source;
    std::unique_ptr<token_cache> tokens;  // on worker 0; get() and invalidate() from any
    std::vector<std::unique_ptr<worker>> workers;
    std::optional<tcp::acceptor> admin_acceptor;
    std::vector<tcp::endpoint> own_endpoints;
    admin_context admin;
    asio::signal_set signals;
    asio::steady_timer watchdog;
    asio::cancellation_signal admin_cancel;
    config initial;
    std::vector<token_key> previous_keys;
    std::shared_ptr<const runtime> current;  // worker 0's view; each worker holds its own copy
    bool stopping = false;
    bool started = false;

    void start();
    void begin_stop();
    void apply(config cfg);
    void reload_from_file();
    asio::awaitable<void> signal_loop();
    asio::awaitable<void> watchdog_loop(std::chrono::microseconds interval);
    void finish_stop();
    void notify_status();
    std::size_t connections() const { return static_cast<std::size_t>(stats.connections_active()); }
};

void app::impl::start() {
    const config& cfg = initial;
    const unsigned n = std::max(1u, cfg.proxy.threads);
    for (unsigned i = 0; i < n; ++i)
        workers.push_back(std::make_unique<worker>(i == 0 ? &ioc : nullptr));
    std::uint16_t port = 0;
    for (auto& w : workers) {
        w->acceptor.emplace(bind_listener(*w->ioc, cfg.proxy.listen, "proxy.listen", n > 1, port));
        port = w->acceptor->local_endpoint().port();
    }
    own_endpoints.push_back(workers[0]->acceptor->local_endpoint());
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
    previous_keys = route_token_keys(initial, env);
    tokens->set_keys(previous_keys);
    current = std::make_shared<const runtime>(initial, env, own_endpoints, *tokens);

    pool_options po;
    po.connect_timeout = cfg.upstream.connect_timeout;
    for (auto& w : workers) {
        w->pool = std::make_unique<upstream_pool>(w->ioc->get_executor(), tls, po);
        w->ctx.ex = w->ioc->get_executor();
        w->ctx.pool = w->pool.get();
        w->ctx.tokens = tokens.get();
        w->ctx.stats = &stats;
        w->ctx.current = current;
        w->max_sessions = (cfg.proxy.max_connections + n - 1) / n;
        asio::co_spawn(*w->ioc, w->accept_loop(), log_exceptions("proxy listener"));
    }

    admin.stats = &stats;
    admin.tokens = [this] {
        // Only the keys the current config needs (a reload may have left others behind).
        auto all = tokens->status();
        std::vector<token_status> out;
        for (auto& s : all) {
            for (const auto& k : current->route_keys) {
                if (s.resource == k.resource && s.identity == k.identity.describe()) {
                    out.push_back(std::move(s));
                    break;
                }
            }
        }
        return out;
    };
    admin.listening = [this] { return !stopping; };

    if (admin_acceptor) {
        asio::co_spawn(
            ioc, run_admin_server(std::move(*admin_acceptor), admin),
            asio::bind_cancellation_slot(admin_cancel.slot(), log_exceptions("admin listener")));
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
    spdlog::info("msiproxy {} listening on {}:{} with {} route(s), {} worker thread(s)",
                 MSIPROXY_VERSION, cfg.proxy.listen.host, port, cfg.routes.size(), n);
    if (opts.notify_systemd) {
        sd_notify_message("READY=1");
        notify_status();
    }
}

void app::impl::notify_status() {
    if (!opts.notify_systemd) return;
    sd_notify_message("STATUS=serving " + std::to_string(current->cfg.routes.size()) +
                      " route(s), " + std::to_string(connections()) + " connection(s)");
}

asio::awaitable<void> worker::accept_loop() {
    asio::steady_timer pause(*ioc);
    while (acceptor && acceptor->is_open()) {
        if (ctx.sessions.size() >= max_sessions) {
            // Back-pressure: leave new connections in the kernel's backlog until one ends.
            pause.expires_after(5ms);
            co_await pause.async_wait(use_tuple);
            continue;
        }
        auto [ec, socket] = co_await acceptor->async_accept(use_tuple);
        if (ec == asio::error::operation_aborted || !acceptor->is_open()) break;
        if (ec) {
            // EMFILE and friends: log, breathe, and keep serving the connections we have.
            log_rate_limited("accept", spdlog::level::err, "accept failed: " + ec.message());
            pause.expires_after(100ms);
            co_await pause.async_wait(use_tuple);
            continue;
        }
        asio::co_spawn(*ioc, run_session(std::move(socket), ctx), log_exceptions("session"));
    }
}

// On the worker's own thread: stop accepting, let sessions finish within the grace period,
// then close what is left and call `then` (also on this thread).
void worker::begin_drain(std::function<void()> then) {
    if (stopping) {
        // A second stop request while draining: stop now.
        abort_sessions();
        return;
    }
    stopping = true;
    error_code ec;
    if (acceptor) acceptor->close(ec);
    ctx.draining = true;
    for (auto* s : std::vector<session_handle*>(ctx.sessions.begin(), ctx.sessions.end()))
        s->drain();
    asio::co_spawn(*ioc, drain(ctx.current->cfg.proxy.shutdown_grace, std::move(then)),
                   log_exceptions("shutdown"));
}

asio::awaitable<void> worker::drain(std::chrono::milliseconds grace, std::function<void()> then) {
    const auto deadline = std::chrono::steady_clock::now() + grace;
    asio::steady_timer t(*ioc);
    while (!ctx.sessions.empty() && std::chrono::steady_clock::now() < deadline) {
        t.expires_after(10ms);
        co_await t.async_wait(use_tuple);
    }
    if (!ctx.sessions.empty()) {
        spdlog::warn("shutdown grace over: closing {} connection(s)", ctx.sessions.size());
        abort_sessions();
    }
    pool->shutdown();
    // Aborted sessions unwind on their own; do not wait on them long.
    t.expires_after(300ms);
    co_await t.async_wait(use_tuple);
    then();
}

void app::impl::begin_stop() {
    if (stopping) {
        spdlog::warn("second stop request: closing {} connection(s) now", connections());
        for (auto& w : workers)
            asio::post(*w->ioc, [w = w.get()] { w->abort_sessions(); });
        return;
    }
    stopping = true;
    for (std::size_t i = 0; i < workers.size(); ++i) {
        worker* w = workers[i].get();
        std::function<void()> then;
        if (i == 0) {
            then = [this] { finish_stop(); };
        } else {
            then = [w] { w->ioc->stop(); };
        }
        if (i == 0) {
            w->begin_drain(std::move(then));  // closes worker 0's listener before STOPPING=1
        } else {
            asio::post(*w->ioc,
                       [w, then = std::move(then)]() mutable { w->begin_drain(std::move(then)); });
        }
    }
    if (opts.notify_systemd) sd_notify_message("STOPPING=1");
    spdlog::info("stopping: no new connections; {} in flight, grace {} ms", connections(),
                 current->cfg.proxy.shutdown_grace.count());
}

void app::impl::finish_stop() {
    tokens->shutdown();
    error_code ec;
    signals.cancel(ec);
    watchdog.cancel();
    // /healthz answered until now, so that a supervisor saw the drain; the admin server and
    // its connections stop here.
    admin_cancel.emit(asio::cancellation_type::all);
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
    const std::string path = current->cfg.path;
    spdlog::info("SIGHUP: reloading {}", path);
    if (opts.notify_systemd) sd_notify_reloading();
    try {
        apply(load_config_file(path));
    } catch (const config_exception& e) {
        for (const auto& err : e.errors())
            spdlog::error("reload rejected: {}", err.format());
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
    const auto& old = current->cfg;
    // Settings read once at start: a reload keeps the running values and names what it ignored.
    std::vector<std::string_view> kept;
    auto keep = [&kept](auto& now, const auto& before, std::string_view key) {
        if (now == before) return;
        now = before;
        kept.push_back(key);
    };
    if (cfg.proxy.listen.to_string() != old.proxy.listen.to_string())
        kept.push_back("proxy.listen");
    cfg.proxy.listen = old.proxy.listen;
    if (cfg.admin.listen.to_string() != old.admin.listen.to_string())
        kept.push_back("admin.listen");
    cfg.admin.listen = old.admin.listen;
    keep(cfg.proxy.threads, old.proxy.threads, "proxy.threads");
    keep(cfg.identity.source, old.identity.source, "identity.source");
    keep(cfg.identity.endpoint, old.identity.endpoint, "identity.endpoint");
    keep(cfg.identity.timeout, old.identity.timeout, "identity.timeout");
    keep(cfg.identity.retry_max, old.identity.retry_max, "identity.retry_max");
    keep(cfg.upstream.ca_file, old.upstream.ca_file, "upstream.ca_file");
    keep(cfg.upstream.connect_timeout, old.upstream.connect_timeout, "upstream.connect_timeout");
    if (!kept.empty()) {
        std::string names;
        for (auto k : kept)
            names.append(names.empty() ? "" : ", ").append(k);
        spdlog::warn(
            "reload: {} change(s) only on restart; keeping the running value(s), the "
            "other settings apply now",
            names);
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
    current = std::make_shared<const runtime>(std::move(cfg), env, own_endpoints, *tokens);
    // Each worker swaps on its own thread; requests in flight keep the generation they began with.
    for (auto& w : workers) {
        asio::post(*w->ioc, [w = w.get(), rt = current] { w->ctx.current = rt; });
    }
    spdlog::info("configuration reloaded: {} route(s)", current->cfg.routes.size());
}

app::app(config cfg, options opts) : impl_(std::make_unique<impl>(std::move(cfg), opts)) {}

app::~app() {
    if (!impl_) return;
    // Let whatever still runs see its sockets closed, so coroutine frames end before the
    // objects they point into are destroyed. The worker threads have been joined by run().
    auto& i = *impl_;
    if (!i.started) return;
    if (i.tokens) i.tokens->shutdown();
    for (auto& w : i.workers) {
        w->abort_sessions();
        if (w->pool) w->pool->shutdown();
        error_code ec;
        if (w->acceptor) w->acceptor->close(ec);
    }
    for (auto& w : i.workers) {
        w->ioc->restart();
        w->ioc->run_for(200ms);
    }
}

void app::start() {
    impl_->start();
}

std::uint16_t app::proxy_port() const {
    return impl_->own_endpoints.empty() ? 0 : impl_->own_endpoints[0].port();
}

std::uint16_t app::admin_port() const {
    return impl_->own_endpoints.size() < 2 ? 0 : impl_->own_endpoints[1].port();
}

int app::run() {
    auto& workers = impl_->workers;
    for (std::size_t n = 1; n < workers.size(); ++n) {
        workers[n]->thread = std::thread([w = workers[n].get()] { w->ioc->run(); });
    }
    impl_->ioc.run();
    // Worker 0 stops last (after its own drain); make sure the others have too.
    for (std::size_t n = 1; n < workers.size(); ++n) {
        workers[n]->ioc->stop();
        workers[n]->thread.join();
    }
    spdlog::info("stopped");
    return 0;
}

void app::stop() {
    asio::post(impl_->ioc, [i = impl_.get()] { i->begin_stop(); });
}

void app::reload(config cfg) {
    asio::post(impl_->ioc,
               [i = impl_.get(), c = std::make_shared<config>(std::move(cfg))]() mutable {
                   if (i->opts.notify_systemd) sd_notify_reloading();
                   i->apply(std::move(*c));
                   if (i->opts.notify_systemd) sd_notify_message("READY=1");
               });
}

}  // namespace msiproxy
