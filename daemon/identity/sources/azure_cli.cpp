// azure_cli: posix_spawn + pipes read through asio stream_descriptors, a deadline that kills the
// child, and reaping by waitpid(WNOHANG) polling, so no SIGCHLD handler is needed.
#include "identity/sources/azure_cli.hpp"

#include <array>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <ctime>

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <nlohmann/json.hpp>

#include "identity/sources/source_util.hpp"

extern char** environ;

namespace msiproxy {

namespace asio = boost::asio;
using namespace std::chrono_literals;

namespace {

constexpr std::size_t max_stdout = 1 << 20;
constexpr std::size_t max_stderr = 16 * 1024;

struct child_result {
    bool timed_out = false;
    int wait_status = 0;
    bool reaped = false;
    std::string out, err;
};

// Reads to EOF, keeping at most `cap` bytes (the rest is drained so the child never blocks).
asio::awaitable<void> read_to_eof(asio::posix::stream_descriptor& d, std::string& buf,
                                  std::size_t cap) {
    char chunk[4096];
    for (;;) {
        auto [ec, n] =
            co_await d.async_read_some(asio::buffer(chunk), asio::as_tuple(asio::use_awaitable));
        if (n > 0 && buf.size() < cap) buf.append(chunk, std::min(n, cap - buf.size()));
        if (ec) co_return;  // eof, or closed after a timeout
    }
}

asio::awaitable<void> wait_until(asio::steady_timer& t) {
    co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
}

// Polls waitpid(WNOHANG) every few milliseconds until the child is gone or `until` passes.
asio::awaitable<bool> reap(pid_t pid, int& status, std::chrono::steady_clock::time_point until) {
    asio::steady_timer t(co_await asio::this_coro::executor);
    auto step = 2ms;
    for (;;) {
        pid_t r = ::waitpid(pid, &status, WNOHANG);
        if (r == pid) co_return true;
        if (r < 0 && errno != EINTR) co_return true;  // not our child any more: nothing to reap
        if (std::chrono::steady_clock::now() >= until) co_return false;
        t.expires_after(step);
        co_await t.async_wait(asio::as_tuple(asio::use_awaitable));
        step = std::min<std::chrono::milliseconds>(step * 2, 50ms);
    }
}

std::string last_error_line(const std::string& err) {
    // az prints "ERROR: Please run 'az login' to setup account." after any warnings.
    std::string best;
    std::size_t pos = 0;
    while (pos < err.size()) {
        std::size_t end = err.find('\n', pos);
        if (end == std::string::npos) end = err.size();
        std::string line = err.substr(pos, end - pos);
        while (!line.empty() && (line.back() == '\r' || line.back() == ' '))
            line.pop_back();
        if (!line.empty() && (best.empty() || line.starts_with("ERROR"))) best = line;
        pos = end + 1;
    }
    if (best.size() > 300) best.resize(300);
    return best;
}

class azure_cli_source final : public token_source {
  public:
    azure_cli_source(asio::any_io_executor ex, std::string az_path,
                     std::chrono::milliseconds timeout)
        : ex_(std::move(ex)), az_(std::move(az_path)), timeout_(timeout) {}

    std::string_view name() const override { return "azure-cli"; }

    asio::awaitable<fetch_outcome> fetch(const std::string& resource,
                                         const identity_selector& identity) override {
        if (!identity.empty()) {
            co_return unsupported_identity(
                name(), identity,
                "the Azure CLI uses its signed-in account (unset AZURE_CLIENT_ID "
                "and the configured ids)");
        }
        fetch_failure f;
        f.kind = failure_kind::unreachable;
        std::string error;
        // Built with push_back: GCC 12 mis-compiles an initializer_list held across co_await.
        std::vector<std::string> args;
        for (const char* a : {"account", "get-access-token", "--resource"})
            args.emplace_back(a);
        args.insert(args.begin(), az_);
        args.push_back(resource);
        args.emplace_back("--output");
        args.emplace_back("json");
        child_result r = co_await run(args, error);
        if (!error.empty()) {
            f.message = error;
            co_return f;
        }
        if (r.timed_out) {
            f.message = "`az account get-access-token` did not finish within " +
                        std::to_string(timeout_.count()) + " ms and was killed";
            co_return f;
        }
        if (!r.reaped || !WIFEXITED(r.wait_status) || WEXITSTATUS(r.wait_status) != 0) {
            f.kind = failure_kind::endpoint_error;
            std::string why = last_error_line(r.err);
            std::string how =
                !r.reaped ? "did not exit"
                : WIFEXITED(r.wait_status)
                    ? "exited with status " + std::to_string(WEXITSTATUS(r.wait_status))
                    : "was killed by signal " + std::to_string(WTERMSIG(r.wait_status));
            f.message = "`az account get-access-token` " + how + (why.empty() ? "" : ": " + why);
            co_return f;
        }
        auto out = parse_az_cli_token(r.out, std::chrono::system_clock::now());
        if (auto* pf = std::get_if<fetch_failure>(&out)) pf->message = "az: " + pf->message;
        co_return out;
    }

  private:
    // Runs az with stdin from /dev/null and stdout/stderr piped back; `error` is set when it
    // could not be started.
    asio::awaitable<child_result> run(const std::vector<std::string>& args, std::string& error) {
        child_result r;
        // std::array, not C arrays: GCC 12 cannot keep the latter in a coroutine frame.
        std::array<int, 2> out{-1, -1}, err{-1, -1};
        if (::pipe2(out.data(), O_CLOEXEC) != 0 || ::pipe2(err.data(), O_CLOEXEC) != 0) {
            error = std::string("cannot create a pipe for az: ") + std::strerror(errno);
            for (int fd : {out[0], out[1], err[0], err[1]}) {
                if (fd >= 0) ::close(fd);
            }
            co_return r;
        }
        posix_spawn_file_actions_t fa;
        posix_spawn_file_actions_init(&fa);
        posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
        posix_spawn_file_actions_adddup2(&fa, out[1], 1);
        posix_spawn_file_actions_adddup2(&fa, err[1], 2);
        // Listening and upstream sockets are not the child's business.
        posix_spawn_file_actions_addclosefrom_np(&fa, 3);
        posix_spawnattr_t attr;
        posix_spawnattr_init(&attr);
        sigset_t none, defaults;
        sigemptyset(&none);
        sigemptyset(&defaults);
        sigaddset(&defaults, SIGPIPE);
        posix_spawnattr_setsigmask(&attr, &none);
        posix_spawnattr_setsigdefault(&attr, &defaults);
        posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);

        std::vector<char*> argv;
        for (const auto& a : args)
            argv.push_back(const_cast<char*>(a.c_str()));
        argv.push_back(nullptr);
        pid_t pid = -1;
        const bool has_slash = az_.find('/') != std::string::npos;
        int rc = has_slash ? ::posix_spawn(&pid, az_.c_str(), &fa, &attr, argv.data(), environ)
                           : ::posix_spawnp(&pid, az_.c_str(), &fa, &attr, argv.data(), environ);
        posix_spawn_file_actions_destroy(&fa);
        posix_spawnattr_destroy(&attr);
        ::close(out[1]);
        ::close(err[1]);
        if (rc != 0) {
            ::close(out[0]);
            ::close(err[0]);
            error = "cannot run " + az_ + ": " + std::strerror(rc) +
                    " (install the Azure CLI or set MSIPROXY_AZ_PATH)";
            co_return r;
        }

        const auto deadline = std::chrono::steady_clock::now() + timeout_;
        {
            asio::posix::stream_descriptor sout(ex_, out[0]);
            asio::posix::stream_descriptor serr(ex_, err[0]);
            asio::steady_timer timer(ex_);
            timer.expires_at(deadline);
            using namespace asio::experimental::awaitable_operators;
            auto which = co_await (
                (read_to_eof(sout, r.out, max_stdout) && read_to_eof(serr, r.err, max_stderr)) ||
                wait_until(timer));
            r.timed_out = which.index() == 1;
        }  // descriptors closed here
        if (r.timed_out) ::kill(pid, SIGKILL);
        // Both pipes at EOF: the child is exiting. Give it until the deadline, then kill it.
        r.reaped = co_await reap(pid, r.wait_status, deadline);
        if (!r.reaped) {
            ::kill(pid, SIGKILL);
            r.timed_out = true;
            r.reaped = co_await reap(pid, r.wait_status,
                                     std::chrono::steady_clock::now() + std::chrono::seconds(5));
        }
        co_return r;
    }

    asio::any_io_executor ex_;
    std::string az_;
    std::chrono::milliseconds timeout_;
};

std::optional<sys_time> parse_local_time(const std::string& s) {
    std::tm tm{};
    int consumed = 0;
    if (std::sscanf(s.c_str(), "%4d-%2d-%2d %2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                    &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &consumed) != 6) {
        return std::nullopt;
    }
    std::string_view rest = std::string_view(s).substr(static_cast<std::size_t>(consumed));
    if (!rest.empty() && rest.front() == '.') {
        rest.remove_prefix(1);
        while (!rest.empty() && rest.front() >= '0' && rest.front() <= '9')
            rest.remove_prefix(1);
    }
    if (!rest.empty() || tm.tm_mon < 1 || tm.tm_mon > 12 || tm.tm_mday < 1 || tm.tm_mday > 31 ||
        tm.tm_hour > 23 || tm.tm_min > 59 || tm.tm_sec > 60) {
        return std::nullopt;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    tm.tm_isdst = -1;  // az writes local wall-clock time; let the C library pick DST
    std::time_t t = std::mktime(&tm);
    if (t == static_cast<std::time_t>(-1)) return std::nullopt;
    return std::chrono::system_clock::from_time_t(t);
}

}  // namespace

fetch_outcome parse_az_cli_token(std::string_view json, sys_time now) {
    auto bad = [](std::string msg) {
        return fetch_failure{failure_kind::bad_response, std::move(msg), true, std::nullopt, 0};
    };
    auto j = nlohmann::json::parse(json, nullptr, false);
    if (!j.is_object()) return bad("output is not a JSON object");
    auto at = j.find("accessToken");
    if (at == j.end() || !at->is_string() || at->get_ref<const std::string&>().empty()) {
        return bad("output has no accessToken");
    }
    std::optional<sys_time> expires;
    if (auto it = j.find("expires_on"); it != j.end()) {
        if (it->is_number_integer()) {
            expires = sys_time(std::chrono::seconds(it->get<long long>()));
        } else if (it->is_string()) {
            expires = parse_expires_on(it->get_ref<const std::string&>());
        }
    }
    if (!expires) {
        if (auto it = j.find("expiresOn"); it != j.end() && it->is_string()) {
            expires = parse_local_time(it->get<std::string>());
        }
    }
    if (!expires) return bad("output has no usable expires_on or expiresOn");
    if (*expires <= now) return bad("the token az returned has already expired");
    access_token t;
    t.value = at->get<std::string>();
    t.obtained = now;
    t.expires_on = *expires;
    return t;
}

std::unique_ptr<token_source> make_azure_cli_source(asio::any_io_executor ex, std::string az_path,
                                                    std::chrono::milliseconds timeout) {
    return std::make_unique<azure_cli_source>(std::move(ex), std::move(az_path), timeout);
}

}  // namespace msiproxy
