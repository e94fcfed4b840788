// OpenSSL over the socket itself: the BIO, the connection set-up, and one non-blocking step of
// a handshake, read or write with its result mapped to Asio's error codes.
#include "upstream/tls_stream.hpp"

#include <sys/socket.h>

#include <cerrno>
#include <new>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <boost/asio/error.hpp>
#include <boost/asio/ssl/error.hpp>

namespace msiproxy {

namespace asio = boost::asio;
using boost::system::error_code;

// The BIO's view of the connection: the descriptor, and the errno of the last failed call,
// kept here because OpenSSL may run other code between the system call and SSL_get_error.
struct tls_stream::bio_state {
    int fd = -1;
    int last_errno = 0;
};

namespace {

int bio_create(BIO* b) {
    BIO_set_init(b, 1);
    return 1;
}

int bio_write(BIO* b, const char* data, std::size_t len, std::size_t* written) {
    auto* st = static_cast<tls_stream::bio_state*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    // MSG_NOSIGNAL: a peer that went away is an error here, never SIGPIPE.
    const ssize_t n = ::send(st->fd, data, len, MSG_NOSIGNAL);
    if (n >= 0) {
        *written = static_cast<std::size_t>(n);
        return 1;
    }
    st->last_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_write(b);
    return 0;
}

int bio_read(BIO* b, char* data, std::size_t len, std::size_t* got) {
    auto* st = static_cast<tls_stream::bio_state*>(BIO_get_data(b));
    BIO_clear_retry_flags(b);
    const ssize_t n = ::recv(st->fd, data, len, 0);
    if (n > 0) {
        *got = static_cast<std::size_t>(n);
        return 1;
    }
    if (n == 0) {
        // End of stream. With BIO_CTRL_EOF answered 0 (below), OpenSSL 3.0 reports a close
        // without close_notify as SSL_ERROR_SYSCALL with no errno, which try_step maps to
        // stream_truncated. Answering BIO_CTRL_EOF would turn it into a fatal error with an
        // alert, which also spoils the session for resumption.
        st->last_errno = 0;
        return 0;
    }
    st->last_errno = errno;
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) BIO_set_retry_read(b);
    return 0;
}

long bio_ctrl(BIO*, int cmd, long, void*) {
    // Nothing is buffered here, so a flush is done; everything else (EOF, kTLS queries, push,
    // pending counts) is answered 0 on purpose.
    return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

const BIO_METHOD* socket_method() {
    static BIO_METHOD* const method = [] {
        BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "msiproxy-socket");
        if (!m) return m;
        BIO_meth_set_create(m, bio_create);
        BIO_meth_set_write_ex(m, bio_write);
        BIO_meth_set_read_ex(m, bio_read);
        BIO_meth_set_ctrl(m, bio_ctrl);
        return m;
    }();
    return method;
}

// Where an SSL object's session slot is found by the new-session callback.
int slot_index() {
    static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
    return index;
}

// Called by OpenSSL when the server hands out a session (TLS 1.3: a NewSessionTicket read
// after the handshake; TLS 1.2: at its end). Returning 1 keeps the reference it passes.
int on_new_session(SSL* ssl, SSL_SESSION* session) {
    auto* slot = static_cast<tls_session_slot*>(SSL_get_ex_data(ssl, slot_index()));
    if (!slot) return 0;
    slot->add(session);
    return 1;
}

}  // namespace

void tls_session_slot::add(SSL_SESSION* s) {
    if (sessions_.size() >= max_kept) {
        SSL_SESSION_free(sessions_.front());
        sessions_.erase(sessions_.begin());
    }
    sessions_.push_back(s);
}

SSL_SESSION* tls_session_slot::take() {
    while (!sessions_.empty()) {
        SSL_SESSION* s = sessions_.back();
        if (SSL_SESSION_is_resumable(s) != 1) {  // used up (TLS 1.3) or spoiled by a failure
            SSL_SESSION_free(s);
            sessions_.pop_back();
            continue;
        }
        if (SSL_SESSION_get_protocol_version(s) >= TLS1_3_VERSION) {
            sessions_.pop_back();  // one use per ticket
        } else if (SSL_SESSION_up_ref(s) != 1) {
            return nullptr;
        }
        return s;
    }
    return nullptr;
}

void tls_session_slot::clear() {
    for (SSL_SESSION* s : sessions_)
        SSL_SESSION_free(s);
    sessions_.clear();
}

void enable_session_resumption(SSL_CTX* ctx) {
    (void)slot_index();  // allocated before any thread can race for it
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, on_new_session);
}

tls_stream::tls_stream(next_layer_type&& tcp, asio::ssl::context& ctx,
                       std::shared_ptr<tls_session_slot> slot)
    : tcp_(std::move(tcp)), bio_(std::make_unique<bio_state>()), slot_(std::move(slot)) {
    const BIO_METHOD* method = socket_method();
    ssl_ = method ? SSL_new(ctx.native_handle()) : nullptr;
    BIO* bio = ssl_ ? BIO_new(method) : nullptr;
    if (!bio) {
        SSL_free(ssl_);
        ssl_ = nullptr;
        throw std::bad_alloc();
    }
    error_code ec;
    tcp_.socket().non_blocking(true, ec);
    bio_->fd = tcp_.socket().native_handle();
    BIO_set_data(bio, bio_.get());
    SSL_set_bio(ssl_, bio, bio);  // the SSL object owns the BIO from here on
    SSL_set_connect_state(ssl_);
    // Partial writes end at a record boundary. A write retried after WANT_WRITE passes the same
    // pointer and length (the op keeps them); accepting a moved buffer only relaxes OpenSSL's
    // check of the pointer.
    SSL_set_mode(ssl_, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    // Read as much as the record buffer holds per recv() instead of a record header, then its
    // body.
    SSL_set_read_ahead(ssl_, 1);
    if (slot_) {
        SSL_set_ex_data(ssl_, slot_index(), slot_.get());
        if (SSL_SESSION* s = slot_->take()) {
            SSL_set_session(ssl_, s);  // takes its own reference
            SSL_SESSION_free(s);
        }
    }
}

tls_stream::tls_stream(tls_stream&& other) noexcept
    : tcp_(std::move(other.tcp_)),
      ssl_(std::exchange(other.ssl_, nullptr)),
      bio_(std::move(other.bio_)),
      scratch_(std::move(other.scratch_)),
      slot_(std::move(other.slot_)),
      fatal_(other.fatal_) {}

tls_stream::~tls_stream() {
    if (!ssl_) return;
    // No close_notify is sent: a connection is closed only when it cannot be reused. Unless
    // TLS itself failed, its session stays resumable: without this, SSL_free takes the close
    // for an abort and marks the session unusable (RFC 5246 7.2.2 asks that only for fatal
    // alerts).
    if (!fatal_) SSL_set_shutdown(ssl_, SSL_SENT_SHUTDOWN | SSL_RECEIVED_SHUTDOWN);
    SSL_free(ssl_);
}

char* tls_stream::scratch() {
    if (!scratch_) scratch_ = std::make_unique_for_overwrite<char[]>(max_record);
    return scratch_.get();
}

tls_stream::step tls_stream::try_step(op_kind k, void* data, std::size_t size, std::size_t& n,
                                      error_code& ec) {
    n = 0;
    ec = {};
    if (!ssl_ || !tcp_.socket().is_open()) {
        // Closed by a deadline or an abort: the descriptor may already belong to someone else.
        ec = asio::error::bad_descriptor;
        return step::failed;
    }
    ERR_clear_error();  // SSL_get_error reads the thread's error queue
    bio_->last_errno = 0;
    int r = 0;
    switch (k) {
        case op_kind::handshake:
            r = SSL_do_handshake(ssl_);
            break;
        case op_kind::read:
            r = SSL_read_ex(ssl_, data, size, &n);
            break;
        case op_kind::write:
            r = SSL_write_ex(ssl_, data, size, &n);
            break;
    }
    if (r == 1) return step::done;
    n = 0;
    switch (SSL_get_error(ssl_, r)) {
        case SSL_ERROR_WANT_READ:
            return step::want_read;
        case SSL_ERROR_WANT_WRITE:
            return step::want_write;
        case SSL_ERROR_ZERO_RETURN:  // close_notify: a clean end of stream
            ec = asio::error::eof;
            return step::failed;
        case SSL_ERROR_SYSCALL:
            if (ERR_peek_error() == 0) {
                ec = bio_->last_errno != 0
                         ? error_code(bio_->last_errno, boost::system::system_category())
                         : error_code(asio::ssl::error::stream_truncated);
                ERR_clear_error();
                return step::failed;
            }
            [[fallthrough]];
        default: {
            const unsigned long e = ERR_peek_error();
            if (ERR_GET_LIB(e) == ERR_LIB_SSL &&
                ERR_GET_REASON(e) == SSL_R_UNEXPECTED_EOF_WHILE_READING) {
                ec = asio::ssl::error::stream_truncated;  // a close without close_notify
            } else {
                fatal_ = true;
                ec = e != 0 ? error_code(static_cast<int>(e), asio::error::get_ssl_category())
                            : error_code(asio::ssl::error::unspecified_system_error);
            }
            ERR_clear_error();
            return step::failed;
        }
    }
}

}  // namespace msiproxy
