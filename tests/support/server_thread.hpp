// The skeleton every fake server shares: an io_context on its own std::thread and a TCP
// acceptor on 127.0.0.1:0 that hands each accepted socket to a coroutine.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <thread>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace msiproxy::test {

// Owns the thread. start() binds and begins accepting; stop() (or the destructor) stops the
// io_context, joins the thread and destroys every pending connection coroutine, so a test can
// end while requests are still in flight.
// Thread safety: port(), connections_accepted() from any thread; start/stop from the owner.
class server_thread {
  public:
    // Called on the server thread for each accepted connection; `id` counts from 1.
    using connection_handler =
        std::function<boost::asio::awaitable<void>(boost::asio::ip::tcp::socket, std::uint64_t id)>;

    explicit server_thread(connection_handler handler);
    ~server_thread();
    server_thread(const server_thread&) = delete;
    server_thread& operator=(const server_thread&) = delete;

    // Binds 127.0.0.1:0, listens and starts the thread. Throws on bind failure.
    void start();
    void stop();

    std::uint16_t port() const { return port_; }
    std::uint64_t connections_accepted() const { return accepted_.load(); }
    boost::asio::io_context& context() { return ioc_; }

  private:
    boost::asio::awaitable<void> accept_loop();

    connection_handler handler_;
    boost::asio::io_context ioc_{1};
    boost::asio::ip::tcp::acceptor acceptor_{ioc_};
    std::uint16_t port_ = 0;
    std::atomic<std::uint64_t> accepted_{0};
    std::thread thread_;
};

}  // namespace msiproxy::test
