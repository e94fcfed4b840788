// The admin listener: GET /healthz, /readyz, /metrics, /tokens. Plain HTTP/1.1 on its own
// acceptor, one coroutine per connection; it never sees or prints a token.
#pragma once

#include <functional>
#include <vector>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "admin/metrics.hpp"
#include "identity/token_status.hpp"

namespace msiproxy {

struct admin_context {
    metrics* stats = nullptr;
    // Every cached identity+resource the current config needs; called on the I/O thread.
    std::function<std::vector<token_status>()> tokens;
    // True while the proxy listener accepts connections.
    std::function<bool()> listening;
};

// Accepts until the acceptor is closed or the coroutine is cancelled. Each connection gets a
// 10 s header deadline and is closed after the response when the client asks for it.
boost::asio::awaitable<void> run_admin_server(boost::asio::ip::tcp::acceptor acceptor,
                                              const admin_context& ctx);

}  // namespace msiproxy
