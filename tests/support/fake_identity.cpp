// fake_identity: a tiny keep-alive HTTP server; decide() is the IMDS emulation, serve() the I/O.
// Request bodies are ignored (IMDS token requests are GETs), but read so keep-alive stays framed.
#include "support/fake_identity.hpp"

#include <cstdio>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "support/beast_helpers.hpp"

namespace msiproxy::test {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

constexpr auto use_tuple = asio::as_tuple(asio::use_awaitable);
constexpr std::string_view token_path = "/metadata/identity/oauth2/token";

std::string error_json(std::string_view error, std::string_view description) {
    return nlohmann::json{{"error", error}, {"error_description", description}}.dump();
}

// Writes a 200 whose body is `bytes` of filler (Content-Length), or chunks of filler forever.
// True when it was all written; false when the client hung up first.
asio::awaitable<bool> send_junk(beast::tcp_stream& stream, std::uint64_t bytes, bool endless,
                                std::atomic<std::uint64_t>& sent) {
    std::string head =
        "HTTP/1.1 200 OK\r\nServer: fake-imds\r\n"
        "Content-Type: application/json; charset=utf-8\r\n";
    head += endless ? std::string("Transfer-Encoding: chunked\r\n")
                    : "Content-Length: " + std::to_string(bytes) + "\r\n";
    head += "Connection: close\r\n\r\n";
    stream.expires_after(std::chrono::seconds(30));
    auto [ec, n] = co_await asio::async_write(stream, asio::buffer(head), use_tuple);
    if (ec) co_return false;
    // {"access_token":"junk-junk-...: looks like the start of a token answer, never ends one.
    std::string piece = R"({"access_token":")";
    while (piece.size() < 64 * 1024)
        piece += "junk-";
    std::uint64_t left = bytes;
    bool first = true;
    while (endless || left > 0) {
        std::string_view data(piece);
        if (!first) data.remove_prefix(17);  // the prefix once only
        if (!endless && data.size() > left) data = data.substr(0, left);
        first = false;
        std::string framed;
        if (endless) {
            char size_line[32];
            const int m = std::snprintf(size_line, sizeof size_line, "%zx\r\n", data.size());
            framed.assign(size_line, static_cast<std::size_t>(m));
            framed.append(data).append("\r\n");
            data = framed;
        }
        stream.expires_after(std::chrono::seconds(30));
        auto [wec, wn] = co_await asio::async_write(stream, asio::buffer(data), use_tuple);
        if (wec) co_return false;
        sent += wn;
        if (!endless) left -= data.size();
    }
    co_return true;
}

}  // namespace

fake_identity::fake_identity()
    : server_(
          [this](tcp::socket socket, std::uint64_t id) { return serve(std::move(socket), id); }) {
    server_.start();
}

fake_identity::~fake_identity() {
    server_.stop();
}

std::string fake_identity::url() const {
    return "http://127.0.0.1:" + std::to_string(port()) + std::string(token_path);
}

void fake_identity::set_behaviour(identity_behaviour b) {
    std::lock_guard lock(mutex_);
    behaviour_ = std::move(b);
}

identity_behaviour fake_identity::behaviour() const {
    std::lock_guard lock(mutex_);
    return behaviour_;
}

void fake_identity::set_token(std::string token) {
    std::lock_guard lock(mutex_);
    behaviour_.token = std::move(token);
}

void fake_identity::set_lifetime(std::chrono::seconds lifetime) {
    std::lock_guard lock(mutex_);
    behaviour_.lifetime = lifetime;
}

void fake_identity::set_delay(std::chrono::milliseconds delay) {
    std::lock_guard lock(mutex_);
    behaviour_.delay = delay;
}

void fake_identity::fail_with(unsigned status, std::string body, std::string retry_after) {
    std::lock_guard lock(mutex_);
    behaviour_.fail_status = status;
    behaviour_.fail_body = std::move(body);
    behaviour_.retry_after = std::move(retry_after);
}

void fake_identity::answer_garbage(bool on) {
    std::lock_guard lock(mutex_);
    behaviour_.garbage = on;
}

void fake_identity::succeed() {
    std::lock_guard lock(mutex_);
    behaviour_.fail_status = 0;
    behaviour_.fail_body.clear();
    behaviour_.retry_after.clear();
    behaviour_.garbage = false;
    behaviour_.junk_body_bytes = 0;
    behaviour_.endless_body = false;
    behaviour_.delay = std::chrono::milliseconds(0);
}

void fake_identity::answer_junk(std::uint64_t body_bytes) {
    std::lock_guard lock(mutex_);
    behaviour_.junk_body_bytes = body_bytes;
}

void fake_identity::answer_endless(bool on) {
    std::lock_guard lock(mutex_);
    behaviour_.endless_body = on;
}

std::optional<std::chrono::steady_clock::time_point> fake_identity::expiry_of(
    const std::string& token) const {
    std::lock_guard lock(mutex_);
    auto it = expiry_.find(token);
    if (it == expiry_.end()) return std::nullopt;
    return it->second;
}

std::vector<std::string> fake_identity::issued_tokens() const {
    std::lock_guard lock(mutex_);
    return issued_;
}

std::optional<std::string> fake_identity::token_for(const std::string& resource) const {
    std::lock_guard lock(mutex_);
    const auto it = by_resource_.find(resource);
    if (it == by_resource_.end()) return std::nullopt;
    return it->second;
}

fake_identity::answer fake_identity::decide(const recorded_request& req) {
    std::lock_guard lock(mutex_);
    const auto& b = behaviour_;
    const std::string json = "application/json; charset=utf-8";
    if (req.path != token_path)
        return {404, json, error_json("not_found", "no such path"), {}, b.delay};
    if (req.method != "GET")
        return {405, json, error_json("invalid_request", "method not allowed"), {}, b.delay};
    // Real IMDS refuses requests without the header (SSRF protection); so must we.
    const auto metadata = req.header("Metadata");
    if (!metadata || *metadata != "true")
        return {400,
                json,
                error_json("invalid_request", "Required metadata header not specified"),
                {},
                b.delay};
    const auto resource = req.query.find("resource");
    if (resource == req.query.end() || resource->second.empty())
        return {400,
                json,
                error_json("invalid_request", "Required query variable 'resource' is missing"),
                {},
                b.delay};
    if (b.fail_status != 0) return {b.fail_status, json, b.fail_body, b.retry_after, b.delay};
    if (b.garbage) return {200, json, "<html>this is not json", {}, b.delay};
    if (b.junk_body_bytes > 0 || b.endless_body)
        return {200, json, {}, {}, b.delay, b.junk_body_bytes, b.endless_body};

    ++counter_;
    std::string token = b.token.empty() ? "fake-token-" + std::to_string(counter_) : b.token;
    issued_.push_back(token);
    expiry_[token] = std::chrono::steady_clock::now() + b.lifetime;
    by_resource_[resource->second] = token;
    const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count();
    const nlohmann::json body = {
        {"access_token", token},
        {"client_id", "00000000-0000-0000-0000-000000000001"},
        {"expires_in", std::to_string(b.lifetime.count())},
        {"expires_on", std::to_string(now + b.lifetime.count())},
        {"ext_expires_in", std::to_string(b.lifetime.count())},
        {"not_before", std::to_string(now)},
        {"resource", resource->second},
        {"token_type", "Bearer"},
    };
    return {200, json, body.dump(), {}, b.delay};
}

asio::awaitable<void> fake_identity::serve(tcp::socket socket, std::uint64_t id) {
    beast::tcp_stream stream(std::move(socket));
    beast::flat_buffer buffer;
    for (;;) {
        http::request<http::string_body> req;
        auto [ec, n] = co_await http::async_read(stream, buffer, req, use_tuple);
        if (ec) co_return;
        recorded_request rec = detail::record_head(req.base(), id);
        rec.body_bytes = req.body().size();
        const answer a = decide(rec);
        log_.add(std::move(rec));
        if (a.delay.count() > 0) {
            asio::steady_timer timer(co_await asio::this_coro::executor);
            timer.expires_after(a.delay);
            co_await timer.async_wait(use_tuple);
        }
        if (a.junk_bytes > 0 || a.endless) {
            if (!co_await send_junk(stream, a.junk_bytes, a.endless, junk_sent_)) ++junk_cut_;
            boost::system::error_code ignored;
            stream.socket().shutdown(tcp::socket::shutdown_send, ignored);
            co_return;
        }
        http::response<http::string_body> res{http::int_to_status(a.status), req.version()};
        res.result(a.status);
        res.set(http::field::server, "fake-imds");
        res.set(http::field::content_type, a.content_type);
        if (!a.retry_after.empty()) res.set(http::field::retry_after, a.retry_after);
        res.body() = a.body;
        res.keep_alive(req.keep_alive());
        res.prepare_payload();
        auto [wec, wn] = co_await http::async_write(stream, res, use_tuple);
        if (wec || !req.keep_alive()) {
            stream.socket().shutdown(tcp::socket::shutdown_send, wec);
            co_return;
        }
    }
}

}  // namespace msiproxy::test
