// test_environment: template variables and closed_port().
// The fakes start in the member initialisers; nothing here does I/O after construction.
#include "support/test_environment.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>

namespace msiproxy::test {

std::map<std::string, std::string> test_environment::vars() const {
    return {
        {"identity_url", identity.url()},
        {"ca_file", certs.ca_file()},
        {"upstream_port", std::to_string(upstream.port())},
        {"plain_port", std::to_string(plain.port())},
    };
}

std::uint16_t closed_port() {
    namespace asio = boost::asio;
    asio::io_context ioc;
    asio::ip::tcp::acceptor acceptor(ioc, {asio::ip::make_address_v4("127.0.0.1"), 0});
    return acceptor.local_endpoint().port();  // closed when acceptor goes out of scope
}

}  // namespace msiproxy::test
