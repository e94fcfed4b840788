// The per-connection request loop: strict head parsing, routing, token injection, streaming
// relay in both directions, and every error of the proxy's own answered per INTERFACE.md.
#include "listener/session.hpp"

#include <array>
#include <charconv>
#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>

#include <spdlog/spdlog.h>
#include <boost/asio/as_tuple.hpp>
#include <boost/asio/experimental/awaitable_operators.hpp>
#include <boost/asio/ssl/error.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>
#include <nlohmann/json.hpp>

#include "admin/metrics.hpp"
#include "common/error.hpp"
#include "listener/request_head.hpp"
#include "log/logging.hpp"

namespace msiproxy {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;
using boost::system::error_code;
using steady = std::chrono::steady_clock;
using asio::experimental::awaitable_operators::operator&&;
using asio::experimental::awaitable_operators::operator||;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::size_t relay_chunk = 16 * 1024;
// First read of a request head: most heads fit; a longer one grows the buffer as it arrives.
constexpr std::size_t idle_read = 1024;
// More header fields than this in one request head: 431, like an oversized head.
constexpr std::size_t max_header_fields = 256;

using request_parser = http::request_parser<http::buffer_body>;
using response_parser = http::response_parser<http::buffer_body>;

bool iequals(std::string_view a, std::string_view b) {
    return beast::iequals(a, b);
}

// RFC 8941 sf-string content: printable ASCII, with '"' and '\' escaped.
std::string sf_string(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (char c : s) {
        if (c == '"' || c == '\\') out += '\\';
        out += (c >= 0x20 && c < 0x7f) ? c : '?';
    }
    return out;
}

// Removes the hop-by-hop headers of RFC 9110 section 7.6.1, including those named in Connection.
// One pass over the fields; names listed in Connection (other than the usual keep-alive and
// close, which are removed anyway) are looked up afterwards.
template <class Fields>
void strip_hop_by_hop(Fields& f) {
    std::vector<std::string> named;
    for (auto it = f.begin(); it != f.end();) {
        switch (it->name()) {
            case http::field::connection:
                for (auto token : http::token_list(it->value())) {
                    if (!iequals(token, "keep-alive") && !iequals(token, "close")) {
                        named.emplace_back(token);
                    }
                }
                [[fallthrough]];
            case http::field::proxy_connection:
            case http::field::keep_alive:
            case http::field::te:
            case http::field::trailer:
            case http::field::upgrade:
            case http::field::proxy_authorization:
            case http::field::proxy_authenticate:
                it = f.erase(it);
                break;
            default:
                ++it;
        }
    }
    for (const auto& n : named)
        f.erase(n);
}

// The deadline of what a connection is waiting for (the client or the upstream; a session waits
// on one at a time), watched by one timer, with no cost per operation: moving the deadline later
// (what the usual flow of a request does) is a store, and only moving it earlier re-arms the
// timer. watch() calls on_expiry(side) each time a deadline passes; the operation in progress
// then fails because on_expiry closed its socket.
class deadline {
  public:
    enum class side { client, upstream };

    explicit deadline(const asio::any_io_executor& ex) : timer_(ex, steady::time_point::max()) {}

    void arm(steady::duration d, side s) {
        at_ = steady::now() + d;
        side_ = s;
        expired_ = false;
        if (at_ < timer_.expiry()) timer_.expires_at(at_);  // wakes the watcher early
    }
    // Nothing to wait for (a token fetch or a connect, which have their own limits).
    void disarm() { at_ = steady::time_point::max(); }
    // The last armed deadline, for side s, passed (until the next arm()).
    bool expired(side s) const { return expired_ && side_ == s; }

    template <class F>
    asio::awaitable<void> watch(F on_expiry) {
        for (;;) {
            auto [ec] = co_await timer_.async_wait(use_tuple);
            auto cs = co_await asio::this_coro::cancellation_state;
            if (cs.cancelled() != asio::cancellation_type::none) co_return;
            if (ec == asio::error::operation_aborted) continue;  // re-armed earlier
            if (at_ <= steady::now()) {
                at_ = steady::time_point::max();
                expired_ = true;
                on_expiry(side_);
            }
            timer_.expires_at(at_);
        }
    }

  private:
    asio::steady_timer timer_;
    steady::time_point at_ = steady::time_point::max();
    side side_ = side::client;
    bool expired_ = false;
};

tcp::socket& socket_of(tcp::socket& s) {
    return s;
}
tcp::socket& socket_of(beast::tcp_stream& s) {
    return s.socket();
}

// Heads are written by hand: Beast's serializer walks its buffer sequences field by field,
// which costs more than everything else a small request needs. The fields went through Beast's
// parser, so names and values are already valid.
template <bool isRequest>
void append_fields(std::string& out, const http::header<isRequest>& h) {
    for (const auto& f : h) {
        out.append(std::string_view(f.name_string())).append(": ");
        out.append(std::string_view(f.value())).append("\r\n");
    }
    out.append("\r\n");
}

void append_request_head(std::string& out, const http::request_header<>& req) {
    out.append(std::string_view(req.method_string())).append(" ");
    out.append(std::string_view(req.target())).append(" HTTP/1.1\r\n");
    append_fields(out, req);
}

void append_response_head(std::string& out, const http::response_header<>& res) {
    out.append(res.version() >= 11 ? "HTTP/1.1 " : "HTTP/1.0 ");
    const unsigned code = res.result_int();
    const char digits[3] = {static_cast<char>('0' + code / 100 % 10),
                            static_cast<char>('0' + code / 10 % 10),
                            static_cast<char>('0' + code % 10)};
    out.append(digits, 3).append(" ");
    out.append(std::string_view(res.reason())).append("\r\n");
    append_fields(out, res);
}

// Writes, in one gather write: `head` (may be empty), then `n` body bytes at `data`, as they are
// or as one chunk of the chunked coding, and for a chunked body that is complete (`last`), the
// last chunk. Trailers are not forwarded.
template <class Stream>
asio::awaitable<error_code> write_piece(Stream& s, std::string_view head, const char* data,
                                        std::size_t n, bool chunked, bool last) {
    char size_line[20];
    std::size_t size_len = 0;
    if (chunked && n > 0) {
        auto r = std::to_chars(size_line, size_line + 16, n, 16);
        *r.ptr++ = '\r';
        *r.ptr++ = '\n';
        size_len = static_cast<std::size_t>(r.ptr - size_line);
    }
    const bool crlf = chunked && n > 0;
    const bool end = chunked && last;
    const std::array<asio::const_buffer, 5> pieces{
        asio::buffer(head.data(), head.size()), asio::buffer(size_line, size_len),
        asio::buffer(data, data ? n : 0), asio::buffer("\r\n", crlf ? 2 : 0),
        asio::buffer("0\r\n\r\n", end ? 5 : 0)};
    if (asio::buffer_size(pieces) == 0) co_return error_code{};
    auto [ec, written] = co_await asio::async_write(s, pieces, use_tuple);
    co_return ec;
}

// Hands out relay buffers: a connection holds one only while a request is in flight, so that
// idle keep-alive connections cost no more than their socket and a small read buffer.
std::unique_ptr<char[]> take_chunk(worker_context& ctx) {
    if (ctx.spare_chunks.empty()) return std::make_unique_for_overwrite<char[]>(relay_chunk);
    auto c = std::move(ctx.spare_chunks.back());
    ctx.spare_chunks.pop_back();
    return c;
}

void give_chunk(worker_context& ctx, std::unique_ptr<char[]> c) {
    constexpr std::size_t max_spare = 64;
    if (c && ctx.spare_chunks.size() < max_spare) ctx.spare_chunks.push_back(std::move(c));
}

// Moves body bytes the parser's buffer already holds into `data` without any I/O, so that a
// small body can leave together with the head. Returns the bytes placed; stops when `data` is
// full, the buffer is used up, the message is complete or the framing needs more input.
template <class Parser>
std::size_t take_buffered_body(Parser& p, beast::flat_buffer& b, char* data, std::size_t cap,
                               error_code& ec) {
    auto& body = p.get().body();
    body.data = data;
    body.size = cap;
    while (!p.is_done() && b.size() > 0 && body.size > 0) {
        const std::size_t used = p.put(b.data(), ec);
        b.consume(used);
        if (ec == http::error::need_buffer || ec == http::error::need_more) {
            ec = {};
            break;
        }
        if (ec || used == 0) break;
    }
    return cap - body.size;
}

class session final : public session_handle {
  public:
    session(tcp::socket socket, worker_context& ctx)
        : ctx_(ctx),
          client_(std::move(socket)),
          deadline_(ctx.ex),
          buf_(ctx.current->cfg.proxy.max_header_bytes + relay_chunk) {
        error_code ec;
        auto ep = client_.remote_endpoint(ec);
        if (!ec) peer_ = ep.address().to_string() + ':' + std::to_string(ep.port());
        client_.set_option(tcp::no_delay(true), ec);
        client_.non_blocking(true, ec);  // read_head's first read tries without waiting
        ctx_.sessions.insert(this);
        if (ctx_.stats) ctx_.stats->connection_opened();
    }
    ~session() override {
        give_chunk(ctx_, std::move(chunk_));
        give_head();
        ctx_.sessions.erase(this);
        if (ctx_.stats) ctx_.stats->connection_closed();
    }

    void drain() override {
        draining_ = true;
        if (idle_) close_client();
    }
    void abort() override {
        draining_ = true;
        close_client();
        if (upstream_) {
            error_code ec;
            upstream_->tcp().socket().close(ec);
        }
    }

    asio::awaitable<void> run();
    // The request loop, with the watchers of both deadlines beside it for its whole life.
    asio::awaitable<void> serve() {
        co_await (run() || deadline_.watch([this](deadline::side s) {
            if (s == deadline::side::client) {
                client_expired();
            } else {
                upstream_expired();
            }
        }));
    }

  private:
    // Per-request state, reset by each iteration of the loop.
    struct exchange_state {
        std::shared_ptr<const runtime> rt;
        const route* matched = nullptr;
        std::string method;
        std::string host;
        std::string path;  // without query, for the access log
        unsigned status = 0;
        std::uint64_t bytes_in = 0;
        std::uint64_t bytes_out = 0;
        steady::time_point start{};
        double upstream_seconds = 0;
        std::string_view proxy_error;
        bool head_sent = false;    // the response head went out: no error reply possible
        bool close_after = false;  // close the client connection after this exchange
        // As the client sent them: forward() rewrites the head for the upstream (HTTP/1.1,
        // keep-alive), so the parsed request no longer says what the client asked for.
        unsigned client_version = 11;
        bool client_keep_alive = true;
    };

    void close_client() {
        error_code ec;
        client_.shutdown(tcp::socket::shutdown_both, ec);
        client_.close(ec);
    }

    // Before waiting on the client (a read or a write), or on the upstream.
    void on_client(steady::duration d) { deadline_.arm(d, deadline::side::client); }
    void on_upstream(steady::duration d) { deadline_.arm(d, deadline::side::upstream); }
    bool client_timed_out() const { return deadline_.expired(deadline::side::client); }
    bool upstream_timed_out() const { return deadline_.expired(deadline::side::upstream); }
    void client_expired() {
        close_client();
        if (tunnel_up_) {
            error_code ec;
            tunnel_up_->socket().close(ec);
        }
    }
    void upstream_expired() {
        if (upstream_) {
            error_code ec;
            upstream_->tcp().socket().close(ec);
        }
    }

    enum class head_result { ok, closed, timeout, too_large, too_many, bad };
    asio::awaitable<head_result> read_head(request_parser& p, bool first);

    asio::awaitable<void> send_error(exchange_state& x, errc e, std::string message,
                                     std::string details = {}, unsigned retry_after = 0);
    asio::awaitable<void> send_raw(std::string_view bytes);

    bool parse_target(const request_parser& p, target_info& t, std::string& why);
    asio::awaitable<void> handle(request_parser& p, exchange_state& x);
    asio::awaitable<void> handle_connect(request_parser& p, exchange_state& x);
    asio::awaitable<void> forward(request_parser& p, exchange_state& x, const upstream_endpoint& ep,
                                  const destination_policy& policy);
    template <class Stream>
    asio::awaitable<error_code> relay(Stream& up, upstream_connection& conn, request_parser& p,
                                      exchange_state& x, bool& retry_ok);
    void finish(exchange_state& x);

    worker_context& ctx_;
    tcp::socket client_;
    deadline deadline_;
    beast::tcp_stream* tunnel_up_ = nullptr;  // a CONNECT tunnel's upstream, while it runs
    beast::flat_buffer buf_;
    std::string peer_;
    bool idle_ = true;
    bool draining_ = false;
    upstream_connection* upstream_ = nullptr;
    std::unique_ptr<char[]> chunk_;      // relay buffer, held only while a request is in flight
    std::unique_ptr<std::string> head_;  // the head being written, likewise

    char* chunk() {
        if (!chunk_) chunk_ = take_chunk(ctx_);
        return chunk_.get();
    }
    std::string& head_buffer() {
        if (!head_ && !ctx_.spare_heads.empty()) {
            head_ = std::move(ctx_.spare_heads.back());
            ctx_.spare_heads.pop_back();
        }
        if (!head_) head_ = std::make_unique<std::string>();
        return *head_;
    }
    void give_head() {
        if (head_ && ctx_.spare_heads.size() < 64 && head_->capacity() <= 16 * 1024) {
            ctx_.spare_heads.push_back(std::move(head_));
        }
        head_.reset();
    }
    // Between requests: give the relay buffer back and drop a read buffer that a large head
    // grew, so that an idle connection holds little memory.
    void going_idle() {
        give_chunk(ctx_, std::move(chunk_));
        give_head();
        if (buf_.size() == 0 && buf_.capacity() > idle_read) buf_.shrink_to_fit();
    }
};

asio::awaitable<session::head_result> session::read_head(request_parser& p, bool first) {
    const auto& pc = ctx_.current->cfg.proxy;
    const std::size_t limit = pc.max_header_bytes;
    std::size_t scanned = 0;
    bool started = buf_.size() > 0;
    bool header_deadline = first || started;
    on_client(header_deadline ? pc.header_timeout : pc.idle_timeout);
    for (;;) {
        auto data = std::string_view(static_cast<const char*>(buf_.data().data()), buf_.size());
        // RFC 9112 section 2.2: ignore empty lines before the request line.
        std::size_t lead = 0;
        while (lead + 1 < data.size() && data[lead] == '\r' && data[lead + 1] == '\n')
            lead += 2;
        if (lead > 0) {
            buf_.consume(lead);
            continue;
        }
        // The head ends at the first empty line; a bare LF is rejected in raw_head_is_clean.
        std::size_t end = find_head_end(data, scanned > 3 ? scanned - 3 : 0);
        if (end != std::string_view::npos) {
            if (end > limit) co_return head_result::too_large;
            auto head = data.substr(0, end);
            if (!raw_head_is_clean(head)) co_return head_result::bad;
            if (header_field_count(head) > max_header_fields) co_return head_result::too_many;
            error_code ec;
            std::size_t used = p.put(asio::buffer(head.data(), head.size()), ec);
            if (ec || used != head.size() || !p.is_header_done()) co_return head_result::bad;
            buf_.consume(end);
            co_return head_result::ok;
        }
        scanned = data.size();
        if (data.size() >= limit) co_return head_result::too_large;

        if (started && !header_deadline) {
            // Part of a request arrived: the rest of the head must follow within
            // header_timeout, however long the connection idled before.
            on_client(pc.header_timeout);
            header_deadline = true;
        }
        std::size_t room =
            std::min<std::size_t>(limit + 4 - data.size(), data.empty() ? idle_read : 8192);
        error_code ec;
        std::size_t n = 0;
        if (data.empty()) {
            // Nothing buffered: read what is there now, else wait for the client without
            // holding a read buffer, so that an idle keep-alive connection costs little more
            // than its socket.
            n = client_.read_some(buf_.prepare(room), ec);  // the socket is non-blocking
            if (ec == asio::error::would_block || ec == asio::error::try_again) {
                buf_.shrink_to_fit();
                std::tie(ec) = co_await client_.async_wait(tcp::socket::wait_read, use_tuple);
                if (!ec) continue;
            }
        } else {
            std::tie(ec, n) = co_await client_.async_read_some(buf_.prepare(room), use_tuple);
        }
        if (ec) {
            if (client_timed_out()) co_return started ? head_result::timeout : head_result::closed;
            co_return head_result::closed;
        }
        buf_.commit(n);
        if (!started) {
            started = true;
            idle_ = false;
        }
    }
}

asio::awaitable<void> session::send_raw(std::string_view bytes) {
    on_client(ctx_.current->cfg.proxy.idle_timeout);
    co_await asio::async_write(client_, asio::buffer(bytes.data(), bytes.size()), use_tuple);
}

asio::awaitable<void> session::send_error(exchange_state& x, errc e, std::string message,
                                          std::string details, unsigned retry_after) {
    auto kind = reply_kind(e);
    x.status = kind.status;
    x.proxy_error = kind.proxy_status;
    if (x.head_sent) {
        // Too late for an answer: the client sees the connection end early.
        x.close_after = true;
        co_return;
    }
    nlohmann::json body = {{"error", kind.proxy_status}, {"message", std::move(message)}};
    body["route"] = x.matched ? nlohmann::json(x.matched->name) : nlohmann::json(nullptr);

    http::response<http::string_body> res{static_cast<http::status>(kind.status), 11};
    res.set(http::field::server, "msiproxy");
    std::string ps = "msiproxy; error=" + std::string(kind.proxy_status);
    if (!details.empty()) ps += "; details=\"" + sf_string(details) + '"';
    res.set("Proxy-Status", ps);
    res.set(http::field::content_type, "application/json");
    res.set(http::field::cache_control, "no-store");
    if (retry_after) res.set(http::field::retry_after, std::to_string(retry_after));
    res.body() = body.dump() + "\n";
    // The client's own Connection: close holds for the proxy's answers too.
    if (!x.client_keep_alive || draining_) x.close_after = true;
    res.keep_alive(!x.close_after);
    res.prepare_payload();
    on_client(ctx_.current->cfg.proxy.idle_timeout);
    auto [ec, n] = co_await http::async_write(client_, res, use_tuple);
    x.head_sent = true;
    if (ec) {
        x.close_after = true;
    } else {
        x.bytes_out += res.body().size();
    }
}

bool session::parse_target(const request_parser& p, target_info& t, std::string& why) {
    const auto& req = p.get();
    auto hosts = req.equal_range(http::field::host);
    auto count = static_cast<std::size_t>(std::distance(hosts.first, hosts.second));
    return parse_request_target(req.target(), count, req[http::field::host], t, why);
}

asio::awaitable<void> session::run() {
    bool first = true;
    while (!draining_) {
        request_parser p;
        p.header_limit(static_cast<std::uint32_t>(ctx_.current->cfg.proxy.max_header_bytes));
        p.body_limit(boost::none);
        idle_ = buf_.size() == 0;
        going_idle();
        auto r = co_await read_head(p, first);
        deadline_.disarm();  // the token fetch and the upstream connect have their own limits
        first = false;
        idle_ = false;

        exchange_state x;
        x.rt = ctx_.current;
        x.start = steady::now();
        if (r == head_result::closed || r == head_result::timeout) break;
        if (r != head_result::ok) {
            x.close_after = true;
            if (r == head_result::too_large) {
                co_await send_error(x, errc::header_too_large,
                                    "request head larger than proxy.max_header_bytes");
            } else if (r == head_result::too_many) {
                co_await send_error(x, errc::header_too_large,
                                    "more than " + std::to_string(max_header_fields) +
                                        " header fields in the request head");
            } else {
                co_await send_error(x, errc::bad_request, "malformed request head (RFC 9112)");
            }
            finish(x);
            break;
        }
        x.method = std::string(p.get().method_string());
        x.client_version = p.get().version();
        x.client_keep_alive = p.get().keep_alive();
        co_await handle(p, x);
        finish(x);
        if (x.close_after || !x.client_keep_alive) break;
    }
    close_client();
}

void session::finish(exchange_state& x) {
    const double total = std::chrono::duration<double>(steady::now() - x.start).count();
    const std::string_view route_name = x.matched ? std::string_view(x.matched->name) : "";
    if (ctx_.stats) {
        ctx_.stats->request_finished(route_name, x.status, total);
        // Failures of the upstream exchange only (502/504, or a response cut short); a missing
        // token is counted by msiproxy_token_refreshes_total{result="failure"}.
        if (!x.proxy_error.empty() &&
            (x.status == 502 || x.status == 504 || x.proxy_error == "http_protocol_error")) {
            ctx_.stats->upstream_error(route_name, x.proxy_error);
        }
    }
    if (x.rt && x.rt->cfg.log.access) {
        access_entry e;
        e.route = route_name;
        e.method = x.method;
        e.host = x.host;
        e.path = x.path;
        e.status = x.status;
        e.bytes_in = x.bytes_in;
        e.bytes_out = x.bytes_out;
        e.total_seconds = total;
        e.upstream_seconds = x.upstream_seconds;
        e.proxy_error = x.proxy_error;
        e.client = peer_;
        log_access(e);
    }
}

asio::awaitable<void> session::handle(request_parser& p, exchange_state& x) {
    auto& req = p.get();
    const runtime& rt = *x.rt;

    // Ambiguous framing (RFC 9112 section 6.3): Beast already refused Content-Length together
    // with Transfer-Encoding and differing Content-Lengths; any transfer coding but a lone
    // "chunked" is refused here, since the upstream might decode it differently.
    if (!transfer_encoding_acceptable(req.count(http::field::transfer_encoding),
                                      req[http::field::transfer_encoding],
                                      req.has_content_length())) {
        x.close_after = true;
        co_return co_await send_error(x, errc::bad_request,
                                      "Transfer-Encoding other than a single \"chunked\"");
    }

    if (req.method() == http::verb::connect) co_return co_await handle_connect(p, x);

    target_info t;
    std::string why;
    if (!parse_target(p, t, why)) {
        x.close_after = true;
        co_return co_await send_error(x, errc::bad_request, why);
    }
    x.host = t.host;
    x.path = t.path.substr(0, t.path.find('?'));

    if (auto expect = req[http::field::expect];
        !expect.empty() && !iequals(expect, "100-continue")) {
        x.close_after = true;
        co_return co_await send_error(x, errc::expectation_failed,
                                      "only \"Expect: 100-continue\" is supported");
    }

    x.matched = rt.routes.match(t.host, t.path);
    if (!x.matched) {
        if (rt.cfg.proxy.unmatched == unmatched_policy::deny) {
            x.close_after = !p.is_done();
            co_return co_await send_error(x, errc::request_denied,
                                          "no route matches host '" + t.host + "' and path '" +
                                              x.path + "', and proxy.unmatched = \"deny\"");
        }
        // Forwarded as it is, without a token: the destination is what the client named.
        upstream_endpoint ep{t.tls, t.host, t.port};
        req.target(t.path);
        req.set(http::field::host, t.authority);
        co_return co_await forward(p, x, ep, rt.forward_policy);
    }

    const route& r = *x.matched;
    // The token comes first: with none, nothing is forwarded (and a 100-continue client has not
    // sent its body yet).
    const auto& slot = rt.slot_of(r);
    auto pub = slot ? token_cache::peek(*slot, std::chrono::system_clock::now()) : nullptr;
    if (!pub) {
        auto deadline = steady::now() + rt.cfg.upstream.response_timeout;
        auto got = co_await ctx_.tokens->get(slot, deadline);
        pub = std::move(got.token);
        if (!pub) {
            x.close_after = !p.is_done();
            co_return co_await send_error(
                x, errc::token_unavailable,
                "no valid token for resource " + r.resource + ": " + got.reason, {},
                static_cast<unsigned>(got.retry_after.count()));
        }
    }

    req.target(upstream_target_path(r, t.path));
    req.set(http::field::host, r.upstream.authority);
    if (r.client_authorization == client_auth_policy::replace || req.count(r.header) == 0) {
        req.erase(r.header);
        if (r.value == "Bearer {token}") {
            req.set(r.header, pub->bearer);
        } else {
            std::string value = r.value;
            if (auto pos = value.find("{token}"); pos != std::string::npos) {
                value.replace(pos, 7, pub->token->value);
            }
            req.set(r.header, value);
        }
    }
    upstream_endpoint ep{r.upstream.tls, r.upstream.host, r.upstream.port};
    co_await forward(p, x, ep, rt.route_policy);
}

asio::awaitable<void> session::handle_connect(request_parser& p, exchange_state& x) {
    const runtime& rt = *x.rt;
    x.close_after = true;
    std::string target(p.get().target());
    auto auth = boost::urls::parse_authority(target);
    if (!auth || !auth->has_port() || auth->host().empty() || auth->has_userinfo()) {
        co_return co_await send_error(x, errc::bad_request, "CONNECT target must be host:port");
    }
    std::string host(auth->host_address());
    to_lower_ascii(host);
    x.host = host;
    if (const route* r = rt.routes.match_host_only(host)) {
        x.matched = r;
        co_return co_await send_error(
            x, errc::request_denied,
            "host '" + host + "' is routed by msiproxy (route '" + r->name +
                "'), so its requests need a token that msiproxy cannot add inside a CONNECT "
                "tunnel: have the app call http://" +
                host +
                "/ through the proxy (HTTP_PROXY) "
                "and msiproxy will use HTTPS to the upstream");
    }
    if (!rt.cfg.proxy.tunnel) {
        co_return co_await send_error(x, errc::request_denied,
                                      "CONNECT tunnels are disabled (proxy.tunnel = false)");
    }
    auto [ec, up] = co_await ctx_.pool->connect_tcp(host, auth->port_number(), &rt.forward_policy);
    if (ec) {
        co_return co_await send_error(x, static_cast<errc>(ec.value()),
                                      "CONNECT to " + target + ": " + ec.message(),
                                      "upstream " + target);
    }
    x.status = 200;
    co_await send_raw("HTTP/1.1 200 Connection Established\r\n\r\n");
    x.head_sent = true;

    // The tunnel's inactivity limit is the client deadline, whichever way the bytes go.
    up.expires_never();
    tunnel_up_ = &up;
    struct forget_tunnel {
        beast::tcp_stream*& p;
        ~forget_tunnel() { p = nullptr; }
    } forget{tunnel_up_};
    // Bytes the client sent after the CONNECT head belong to the tunnel.
    if (buf_.size() > 0) {
        on_client(rt.cfg.proxy.idle_timeout);
        auto [wec, n] = co_await asio::async_write(up, buf_.data(), use_tuple);
        x.bytes_in += n;
        buf_.consume(buf_.size());
        if (wec) co_return;
    }
    const auto idle = rt.cfg.proxy.idle_timeout;
    auto pump = [this, idle](auto& from, auto& to,
                             std::uint64_t& counter) -> asio::awaitable<void> {
        auto data = std::make_unique_for_overwrite<char[]>(relay_chunk);
        for (;;) {
            on_client(idle);
            auto [rec, n] =
                co_await from.async_read_some(asio::buffer(data.get(), relay_chunk), use_tuple);
            if (rec) {
                error_code ignored;
                if (rec == asio::error::eof) {
                    socket_of(to).shutdown(tcp::socket::shutdown_send, ignored);
                } else {
                    socket_of(from).close(ignored);
                    socket_of(to).close(ignored);
                }
                co_return;
            }
            on_client(idle);
            auto [wec, m] = co_await asio::async_write(to, asio::buffer(data.get(), n), use_tuple);
            counter += m;
            if (wec) {
                error_code ignored;
                socket_of(from).close(ignored);
                socket_of(to).close(ignored);
                co_return;
            }
        }
    };
    co_await (pump(client_, up, x.bytes_in) && pump(up, client_, x.bytes_out));
}

asio::awaitable<void> session::forward(request_parser& p, exchange_state& x,
                                       const upstream_endpoint& ep,
                                       const destination_policy& policy) {
    auto& req = p.get();
    strip_hop_by_hop(req);
    const bool expect_continue = iequals(req[http::field::expect], "100-continue");
    req.erase(http::field::expect);
    req.version(11);
    req.keep_alive(true);

    const auto upstream_start = steady::now();
    for (int attempt = 0; attempt < 2; ++attempt) {
        auto [ec, conn] = co_await ctx_.pool->acquire(ep, &policy, attempt == 0);
        if (ec) {
            x.close_after = x.close_after || !p.is_done();
            co_return co_await send_error(x, static_cast<errc>(ec.value()),
                                          "upstream " + ep.key() + ": " + ec.message(),
                                          "upstream " + ep.key());
        }
        // msiproxy answers 100 Continue itself once it knows it can forward (as nginx does),
        // so the client's body is requested only when a token and a connection are at hand.
        if (expect_continue && !p.is_done() && attempt == 0 && x.client_version >= 11) {
            co_await send_raw("HTTP/1.1 100 Continue\r\n\r\n");
        }
        upstream_ = conn.get();
        bool retry_ok = false;
        auto err = co_await conn->visit(
            [&](auto& stream) { return relay(stream, *conn, p, x, retry_ok); });
        upstream_ = nullptr;
        x.upstream_seconds = std::chrono::duration<double>(steady::now() - upstream_start).count();
        if (!err) {
            // relay() parked the connection in the pool when it was reusable.
            if (conn) ctx_.pool->release(std::move(conn));
            co_return;
        }
        if (retry_ok && attempt == 0) {
            spdlog::debug("reused connection to {} was closed by the upstream; retrying once",
                          ep.key());
            continue;
        }
        errc e = err.category() == msiproxy_category() ? static_cast<errc>(err.value())
                                                       : errc::upstream_protocol_error;
        x.close_after = x.close_after || !p.is_done();
        if (e == errc::bad_request) {
            co_return co_await send_error(x, e,
                                          "malformed request body (RFC 9112 chunked framing)");
        }
        co_return co_await send_error(x, e, "upstream " + ep.key() + ": " + err.message(),
                                      "upstream " + ep.key());
    }
}

template <class Stream>
asio::awaitable<error_code> session::relay(Stream& up, upstream_connection& conn, request_parser& p,
                                           exchange_state& x, bool& retry_ok) {
    const runtime& rt = *x.rt;
    auto& upstream_tcp = conn.tcp();
    auto& req = p.get();
    const bool head_request = req.method() == http::verb::head;
    // A request that sent nothing but its head may be replayed on a new connection when a
    // pooled one turns out closed (RFC 9110 section 9.2.2: only idempotent methods).
    const bool replayable =
        conn.reused && p.is_done() &&
        (req.method() == http::verb::get || head_request || req.method() == http::verb::options ||
         req.method() == http::verb::delete_ || req.method() == http::verb::put ||
         req.method() == http::verb::trace);
    bool response_started = false;
    // Closes the upstream connection on every way out but a clean, complete exchange, so that a
    // connection with a half-sent request or an unread response is never pooled.
    struct close_guard {
        beast::tcp_stream& s;
        bool armed = true;
        ~close_guard() {
            if (!armed) return;
            error_code ignored;
            s.socket().close(ignored);
        }
    } keep_upstream{upstream_tcp};
    auto broken = [&](error_code ec) -> error_code {
        if (upstream_timed_out()) return make_error_code(errc::upstream_response_timeout);
        if (!response_started && replayable &&
            (ec == asio::error::eof || ec == asio::error::connection_reset ||
             ec == asio::error::broken_pipe || ec == http::error::end_of_stream ||
             ec == asio::ssl::error::stream_truncated)) {
            retry_ok = true;
        }
        return make_error_code(errc::upstream_protocol_error);
    };

    // Request head and body, streamed through a fixed chunk. Body bytes that arrived with the
    // head leave with it, in one write.
    std::string& head = head_buffer();
    head.clear();
    append_request_head(head, req);
    const bool request_chunked = req.chunked();
    std::size_t got = 0;
    if (!p.is_done() && buf_.size() > 0) {
        error_code pec;
        got = take_buffered_body(p, buf_, chunk(), relay_chunk, pec);
        if (pec) {
            x.close_after = true;
            co_return make_error_code(errc::bad_request);
        }
    }
    x.bytes_in += got;
    on_upstream(rt.cfg.upstream.response_timeout);
    if (auto ec = co_await write_piece(up, head, got ? chunk() : nullptr, got, request_chunked,
                                       p.is_done())) {
        co_return broken(ec);
    }
    // Beast reads no more than the buffer's free space: make room for a TLS record's worth.
    if (!p.is_done()) buf_.reserve(relay_chunk);
    while (!p.is_done()) {
        auto& body = req.body();
        body.data = chunk();
        body.size = relay_chunk;
        on_client(rt.cfg.proxy.idle_timeout);
        auto [rec, rn] = co_await http::async_read(client_, buf_, p, use_tuple);
        if (rec == http::error::need_buffer) rec = {};
        if (rec) {
            // The client broke off or sent bad chunk framing: the upstream holds a partial
            // request that must never complete (the guard closes it), and the client
            // connection cannot go on.
            x.close_after = true;
            if (rec.category() != http::make_error_code(http::error::bad_chunk).category() ||
                rec == http::error::end_of_stream || rec == http::error::partial_message) {
                x.status = client_timed_out() ? 408 : 400;
                x.head_sent = true;  // the client is gone: nobody to answer
            }
            co_return make_error_code(errc::bad_request);
        }
        got = relay_chunk - body.size;
        x.bytes_in += got;
        on_upstream(rt.cfg.upstream.response_timeout);
        if (auto ec = co_await write_piece(up, {}, chunk(), got, request_chunked, p.is_done()))
            co_return broken(ec);
    }

    // Response head; 1xx interim responses (but 101) are passed on and the next one read.
    std::optional<response_parser> rp;
    for (;;) {
        rp.emplace();
        rp->body_limit(boost::none);
        rp->header_limit(static_cast<std::uint32_t>(rt.cfg.proxy.max_header_bytes));
        if (head_request) rp->skip(true);
        on_upstream(rt.cfg.upstream.response_timeout);
        auto [ec, n] = co_await http::async_read_header(up, conn.buffer, *rp, use_tuple);
        if (ec) co_return broken(ec);
        response_started = true;
        auto status = rp->get().result_int();
        if (status >= 100 && status < 200) {
            if (status == 101) co_return make_error_code(errc::upstream_protocol_error);
            if (status != 100 && x.client_version >= 11) {
                auto& interim = rp->get();
                strip_hop_by_hop(interim);
                interim.version(11);
                head.clear();
                append_response_head(head, interim);
                on_client(rt.cfg.proxy.idle_timeout);
                if (co_await write_piece(client_, head, nullptr, 0, false, false)) {
                    x.close_after = true;
                    x.head_sent = true;
                    co_return error_code{};
                }
            }
            continue;
        }
        break;
    }

    auto& res = rp->get();
    x.status = res.result_int();
    if (x.status == 401 && x.matched) {
        // RFC 6750: the upstream says the token is expired or revoked. Refresh it (rate-limited
        // in the cache) so that a revoked token does not stick until its scheduled refresh.
        auto challenge = res[http::field::www_authenticate];
        if (challenge.find("invalid_token") != std::string_view::npos) {
            ctx_.tokens->invalidate(rt.key_of(*x.matched),
                                    "HTTP 401 invalid_token from " + conn.key());
        }
    }
    const bool upstream_keep_alive = res.keep_alive();
    const bool client_http11 = x.client_version >= 11;
    strip_hop_by_hop(res);
    const bool body_expected = !head_request && !(x.status == 204 || x.status == 304);
    bool keep_client = x.client_keep_alive && !draining_ && !x.close_after;
    if (body_expected && !res.has_content_length() && !res.chunked()) {
        // Body delimited by the upstream closing: re-frame as chunked for HTTP/1.1 clients,
        // close-delimited for HTTP/1.0 ones.
        if (client_http11) {
            res.chunked(true);
        } else {
            keep_client = false;
        }
    }
    if (!client_http11 && res.chunked()) {
        res.chunked(false);
        keep_client = false;
    }
    res.version(client_http11 ? 11 : 10);
    res.keep_alive(keep_client);
    if (!keep_client) x.close_after = true;
    const bool response_chunked = body_expected && res.chunked();

    // The head goes out together with whatever body bytes came with it (a small response is one
    // write), then the rest streams through the chunk.
    head.clear();
    append_response_head(head, res);
    got = 0;
    if (!rp->is_done() && conn.buffer.size() > 0) {
        error_code pec;
        got = take_buffered_body(*rp, conn.buffer, chunk(), relay_chunk, pec);
        if (pec) co_return make_error_code(errc::upstream_protocol_error);
    }
    x.bytes_out += got;
    on_client(rt.cfg.proxy.idle_timeout);
    auto wec = co_await write_piece(client_, head, got ? chunk() : nullptr, got, response_chunked,
                                    rp->is_done());
    x.head_sent = true;
    if (wec) {
        x.close_after = true;
        co_return error_code{};
    }
    // A body of known length is read straight into the relay chunk once the parser's buffer is
    // used up: a byte count is all the framing there is, so the parser's copy is not needed.
    if (!rp->is_done() && rp->content_length() && !response_chunked) {
        while (!rp->is_done() && conn.buffer.size() > 0) {
            error_code pec;
            got = take_buffered_body(*rp, conn.buffer, chunk(), relay_chunk, pec);
            if (pec || got == 0) {  // cannot happen with a byte count; never guess
                x.close_after = true;
                x.proxy_error = "http_protocol_error";
                co_return error_code{};
            }
            x.bytes_out += got;
            on_client(rt.cfg.proxy.idle_timeout);
            if (co_await write_piece(client_, {}, chunk(), got, false, false)) {
                x.close_after = true;
                co_return error_code{};
            }
        }
        std::uint64_t left = rp->is_done() ? 0 : rp->content_length_remaining().value_or(0);
        while (left > 0) {
            on_upstream(rt.cfg.upstream.response_timeout);
            auto [rec, n] = co_await up.async_read_some(
                asio::buffer(chunk(),
                             static_cast<std::size_t>(std::min<std::uint64_t>(relay_chunk, left))),
                use_tuple);
            if (rec) {
                x.close_after = true;
                x.proxy_error = "http_protocol_error";
                co_return error_code{};
            }
            left -= n;
            x.bytes_out += n;
            on_client(rt.cfg.proxy.idle_timeout);
            if (co_await write_piece(client_, {}, chunk(), n, false, false)) {
                x.close_after = true;
                co_return error_code{};
            }
        }
        if (upstream_keep_alive && conn.buffer.size() == 0) keep_upstream.armed = false;
        co_return error_code{};
    }
    if (!rp->is_done()) conn.buffer.reserve(relay_chunk);
    while (!rp->is_done()) {
        auto& body = res.body();
        body.data = chunk();
        body.size = relay_chunk;
        on_upstream(rt.cfg.upstream.response_timeout);
        auto [rec, rn] = co_await http::async_read(up, conn.buffer, *rp, use_tuple);
        if (rec == http::error::need_buffer) rec = {};
        if (rec) {
            // The upstream broke off mid-body: the client must see a truncated message,
            // never a complete-looking one.
            x.close_after = true;
            x.proxy_error = "http_protocol_error";
            co_return error_code{};
        }
        got = relay_chunk - body.size;
        x.bytes_out += got;
        on_client(rt.cfg.proxy.idle_timeout);
        if (co_await write_piece(client_, {}, chunk(), got, response_chunked, rp->is_done())) {
            x.close_after = true;
            co_return error_code{};
        }
    }
    // Reusable only after a complete, keep-alive response with nothing left over; every other
    // way out of here leaves the connection to the guard, which closes it.
    if (upstream_keep_alive && rp->is_done() && conn.buffer.size() == 0)
        keep_upstream.armed = false;
    co_return error_code{};
}

}  // namespace

asio::awaitable<void> run_session(tcp::socket socket, worker_context& ctx) {
    session s(std::move(socket), ctx);
    co_await s.serve();
}

}  // namespace msiproxy
