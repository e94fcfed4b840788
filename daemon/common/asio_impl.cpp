// Compiles Boost.Asio (with SSL) and Boost.Beast once for the whole program, so that no other
// translation unit instantiates their non-template code (BOOST_*_SEPARATE_COMPILATION).
#include <boost/asio/impl/src.hpp>
#include <boost/asio/ssl/impl/src.hpp>
#include <boost/beast/src.hpp>
