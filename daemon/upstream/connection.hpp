// One connection to an upstream (plain TCP or TLS over TCP) with its read buffer, as leased
// from the pool for one exchange at a time.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <variant>

#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "upstream/tls_stream.hpp"

namespace msiproxy {

// Where a connection goes; also the pool key.
struct upstream_endpoint {
    bool tls = true;
    std::string host;  // name or IP literal, no brackets
    std::uint16_t port = 443;
    std::string key() const;  // "https://host:port"
};

class upstream_connection {
  public:
    using plain_stream = boost::beast::tcp_stream;
    using tls_stream = msiproxy::tls_stream;

    upstream_connection(plain_stream&& s, std::string key);
    upstream_connection(tls_stream&& s, std::string key);

    boost::beast::tcp_stream& tcp();
    // Calls f(stream&) with the concrete stream type; lets relay code be written once.
    template <class F>
    decltype(auto) visit(F&& f) {
        return std::visit(std::forward<F>(f), stream_);
    }
    bool is_tls() const { return stream_.index() == 1; }

    // True when the peer has not closed the idle connection (non-blocking peek).
    bool looks_alive();

    boost::beast::flat_buffer buffer{65536};
    const std::string& key() const { return key_; }
    bool reused = false;  // has served an exchange before this lease
    std::chrono::steady_clock::time_point idle_since{};

  private:
    std::variant<plain_stream, tls_stream> stream_;
    std::string key_;
};

}  // namespace msiproxy
