// Shared by every source: one HTTP exchange turned into a fetch_outcome.
#pragma once

#include "identity/http_fetch.hpp"
#include "identity/token.hpp"

namespace msiproxy {

// Runs the request; transport errors become failure_kind::unreachable, non-2xx answers are
// classified, 2xx bodies parsed.
boost::asio::awaitable<fetch_outcome> fetch_token(boost::asio::any_io_executor ex,
                                                  boost::asio::ssl::context& tls,
                                                  fetch_request req);

}  // namespace msiproxy
