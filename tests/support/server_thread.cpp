// server_thread: accept loop and thread lifetime for the fakes.
// Connection coroutines are detached; they die with the io_context when the server stops.
#include "support/server_thread.hpp"

#include <exception>
#include <iostream>

#include <boost/asio/as_tuple.hpp>
#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/use_awaitable.hpp>

namespace msiproxy::test {

namespace asio = boost::asio;
using tcp = asio::ip::tcp;

server_thread::server_thread(connection_handler handler) : handler_(std::move(handler)) {}

server_thread::~server_thread() {
    stop();
}

void server_thread::start() {
    const tcp::endpoint ep(asio::ip::make_address_v4("127.0.0.1"), 0);
    acceptor_.open(ep.protocol());
    acceptor_.set_option(tcp::acceptor::reuse_address(true));
    acceptor_.bind(ep);
    acceptor_.listen(asio::socket_base::max_listen_connections);
    port_ = acceptor_.local_endpoint().port();
    asio::co_spawn(ioc_, accept_loop(), asio::detached);
    thread_ = std::thread([this] { ioc_.run(); });
}

void server_thread::stop() {
    if (!thread_.joinable()) return;
    ioc_.stop();
    thread_.join();
    // Pending connection coroutines are not resumed again: their frames (and sockets) are
    // destroyed with the io_context, which outlives every other member.
    boost::system::error_code ec;
    acceptor_.close(ec);
}

asio::awaitable<void> server_thread::accept_loop() {
    for (;;) {
        auto [ec, socket] = co_await acceptor_.async_accept(asio::as_tuple(asio::use_awaitable));
        if (ec) {
            if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
            continue;  // EMFILE and friends: keep accepting, the test will time out visibly
        }
        const std::uint64_t id = ++accepted_;
        asio::co_spawn(ioc_, handler_(std::move(socket), id), [](std::exception_ptr e) {
            // A fake must never take the test process down; report and drop the connection.
            if (!e) return;
            try {
                std::rethrow_exception(e);
            } catch (const std::exception& ex) {
                std::cerr << "fake server connection failed: " << ex.what() << '\n';
            }
        });
    }
}

}  // namespace msiproxy::test
