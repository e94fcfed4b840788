// A TLS client stream that lets OpenSSL read and write the socket itself.
//
// Asio's ssl::stream runs OpenSSL over a memory BIO pair: every record is received into the
// engine's buffer, copied into the BIO, decrypted, and then copied out again, through several
// layers of composed operations per read. Here the SSL object owns a small BIO that calls
// recv()/send() on the non-blocking socket: a read that finds data is one SSL_read_ex (with
// read-ahead, one recv() fetches as many records as the buffer holds), and only when OpenSSL
// reports WANT_READ or WANT_WRITE does the operation wait for the socket in the reactor.
//
// One operation at a time: HTTP/1.1 relaying never reads and writes the same upstream
// connection at once, and this stream does not support it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <utility>
#include <vector>

#include <openssl/ssl.h>
#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/cancellation_type.hpp>
#include <boost/asio/compose.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/system/error_code.hpp>

namespace msiproxy {

// The TLS sessions an upstream handed out, kept per endpoint so that a new connection to it
// resumes (an abbreviated handshake: no certificate chain, no key exchange signature). Only
// connections to the endpoint they were made for may use them: a resumed session is not
// verified again. TLS 1.3 tickets are used once each (RFC 8446 C.4; OpenSSL also marks a used
// one not resumable), so the slot keeps the last few a server sent; a TLS 1.2 session is
// reused until replaced. Owned by one worker's pool and the connections it made; never shared
// across threads.
class tls_session_slot {
  public:
    tls_session_slot() = default;
    tls_session_slot(const tls_session_slot&) = delete;
    tls_session_slot& operator=(const tls_session_slot&) = delete;
    ~tls_session_slot() { clear(); }

    // Takes ownership of `s`.
    void add(SSL_SESSION* s);
    // The session for a new connection to offer, or null; the caller takes ownership.
    SSL_SESSION* take();
    void clear();
    std::uint64_t last_used = 0;  // the pool's use counter when a connection last needed it

  private:
    static constexpr std::size_t max_kept = 4;
    std::vector<SSL_SESSION*> sessions_;  // oldest first
};

// Lets connections made with `ctx` keep the sessions their servers send in their slot (a
// client-side cache with no internal store). Connections without a slot are unaffected.
void enable_session_resumption(SSL_CTX* ctx);

class tls_stream {
  public:
    using next_layer_type = boost::beast::tcp_stream;
    using executor_type = next_layer_type::executor_type;

    // Takes a connected stream; the socket is switched to non-blocking mode. With a slot, the
    // handshake offers the session it holds, and sessions the server sends are kept there.
    // Throws std::bad_alloc when OpenSSL cannot allocate the connection.
    tls_stream(next_layer_type&& tcp, boost::asio::ssl::context& ctx,
               std::shared_ptr<tls_session_slot> slot = nullptr);
    tls_stream(tls_stream&& other) noexcept;
    tls_stream& operator=(tls_stream&&) = delete;
    ~tls_stream();

    executor_type get_executor() noexcept { return tcp_.get_executor(); }
    next_layer_type& next_layer() noexcept { return tcp_; }
    SSL* native_handle() noexcept { return ssl_; }

    struct bio_state;  // what the socket BIO knows (tls_stream.cpp)

    // What one non-blocking step of OpenSSL came to.
    enum class step { done, want_read, want_write, failed };

    template <class Token>
    auto async_handshake(Token&& token) {
        return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
            io_op{this, op_kind::handshake, nullptr, 0}, token, tcp_);
    }

    template <class MutableBuffers, class Token>
    auto async_read_some(const MutableBuffers& buffers, Token&& token) {
        boost::asio::mutable_buffer b;
        for (auto it = boost::asio::buffer_sequence_begin(buffers),
                  end = boost::asio::buffer_sequence_end(buffers);
             it != end; ++it) {
            if (boost::asio::buffer_size(*it) > 0) {
                b = *it;
                break;
            }
        }
        return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
            io_op{this, op_kind::read, b.data(), b.size()}, token, tcp_);
    }

    // Writes at most one TLS record's worth. Several small buffers (a head, a chunk-size line,
    // a body piece) are gathered into one record, so a small request is one record and one
    // send(); a large first buffer is written from where it is, without a copy.
    template <class ConstBuffers, class Token>
    auto async_write_some(const ConstBuffers& buffers, Token&& token) {
        const auto [data, size] = gather(buffers);
        return boost::asio::async_compose<Token, void(boost::system::error_code, std::size_t)>(
            io_op{this, op_kind::write, const_cast<char*>(data), size}, token, tcp_);
    }

  private:
    static constexpr std::size_t max_record = 16 * 1024;
    enum class op_kind { handshake, read, write };

    // One non-blocking attempt; on `done`, `n` holds the bytes moved, on `failed`, `ec` says
    // why.
    step try_step(op_kind k, void* data, std::size_t size, std::size_t& n,
                  boost::system::error_code& ec);
    char* scratch();

    template <class ConstBuffers>
    std::pair<const char*, std::size_t> gather(const ConstBuffers& buffers) {
        auto it = boost::asio::buffer_sequence_begin(buffers);
        const auto end = boost::asio::buffer_sequence_end(buffers);
        while (it != end && boost::asio::buffer_size(*it) == 0)
            ++it;
        if (it == end) return {nullptr, 0};
        const boost::asio::const_buffer first = *it;
        std::size_t rest = 0;
        for (auto j = std::next(it); j != end; ++j)
            rest += boost::asio::buffer_size(*j);
        if (rest == 0 || first.size() >= max_record) {
            return {static_cast<const char*>(first.data()), first.size()};
        }
        char* out = scratch();
        const std::size_t n =
            boost::asio::buffer_copy(boost::asio::buffer(out, max_record), buffers);
        return {out, n};
    }

    struct io_op {
        tls_stream* self_stream;
        op_kind kind;
        void* data;
        std::size_t size;
        bool started = false;
        std::size_t result_n = 0;
        boost::system::error_code result_ec{};
        bool finished = false;

        template <class Self>
        void operator()(Self& self, boost::system::error_code wait_ec = {}) {
            if (finished) {  // resumed after the post below
                self.complete(result_ec, result_n);
                return;
            }
            const bool first = !started;
            started = true;
            if (wait_ec) {
                self.complete(wait_ec, 0);
                return;
            }
            // A cancellation that arrived after the wait had already completed (the wait could
            // not be aborted then): honour it here rather than wait again.
            if (!first && self.cancelled() != boost::asio::cancellation_type::none) {
                self.complete(boost::asio::error::operation_aborted, 0);
                return;
            }
            if (kind != op_kind::handshake && size == 0) {
                result_ec = {};
                result_n = 0;
            } else {
                switch (self_stream->try_step(kind, data, size, result_n, result_ec)) {
                    case step::want_read:
                        self_stream->tcp_.socket().async_wait(boost::asio::socket_base::wait_read,
                                                              std::move(self));
                        return;
                    case step::want_write:
                        self_stream->tcp_.socket().async_wait(boost::asio::socket_base::wait_write,
                                                              std::move(self));
                        return;
                    case step::done:
                    case step::failed:
                        break;
                }
            }
            if (first) {
                // Never complete inside the initiating function.
                finished = true;
                auto ex = self.get_executor();
                boost::asio::post(ex, std::move(self));
                return;
            }
            self.complete(result_ec, result_n);
        }
    };

    next_layer_type tcp_;
    SSL* ssl_ = nullptr;
    std::unique_ptr<bio_state> bio_;
    std::unique_ptr<char[]> scratch_;
    std::shared_ptr<tls_session_slot> slot_;  // outlives ssl_, whose ex_data points at it
    bool fatal_ = false;                      // TLS failed (alert, bad record): session unusable
};

}  // namespace msiproxy
