// A bare blocking TCP client socket for tests that must misbehave at the byte level: trickle a
// request head, watch for an answer without consuming or closing anything, see the peer close.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

namespace msiproxy::test {

// One connection to 127.0.0.1:port. Every wait is bounded by the timeout given; nothing here
// closes the socket behind the caller's back (unlike a Beast stream whose timer expired).
// Not thread-safe: one thread uses a socket.
class raw_socket {
  public:
    // Connects at once (a listener with a full accept queue still completes the handshake).
    // Throws std::system_error when it cannot.
    explicit raw_socket(std::uint16_t port);
    ~raw_socket();
    raw_socket(const raw_socket&) = delete;
    raw_socket& operator=(const raw_socket&) = delete;

    // Writes all of `bytes`; false when the peer closed or reset the connection.
    bool send(std::string_view bytes);
    // True when bytes or an end of stream arrived within `timeout` (nothing is consumed).
    bool readable_within(std::chrono::milliseconds timeout);
    struct read_result {
        std::string bytes;    // everything received
        bool closed = false;  // the peer closed or reset the connection
    };
    // Reads until the peer closes (or resets) the connection, or until `timeout` passes.
    read_result read_until_closed(std::chrono::milliseconds timeout);
    // Half-closes (FIN) or fully closes the connection now.
    void shutdown_send();
    void close();

  private:
    int fd_ = -1;
};

}  // namespace msiproxy::test
