// One downstream connection: read requests, route them, inject the token, relay to the
// upstream and back, until the client or the deadline ends it. One coroutine per connection.
#pragma once

#include <boost/asio/awaitable.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "listener/worker.hpp"

namespace msiproxy {

// Serves `socket` until it closes. Registers itself in ctx.sessions while alive. Never throws
// for network events; the caller's completion handler logs anything else.
boost::asio::awaitable<void> run_session(boost::asio::ip::tcp::socket socket, worker_context& ctx);

}  // namespace msiproxy
