// Shared by every source: one HTTP exchange turned into a fetch_outcome, form encoding, and the
// failure a source returns when it cannot serve the requested identity.
#pragma once

#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "config/config.hpp"
#include "identity/http_fetch.hpp"
#include "identity/token.hpp"

namespace msiproxy {

// Runs the request; transport errors become failure_kind::unreachable, non-2xx answers are
// classified, 2xx bodies parsed.
boost::asio::awaitable<fetch_outcome> fetch_token(boost::asio::any_io_executor ex,
                                                  boost::asio::ssl::context& tls,
                                                  fetch_request req);

// "scheme://host:port/path" of a URL: names the endpoint in messages without the query, which
// may carry identity ids.
std::string endpoint_label(const std::string& url);

// The fetch_token step after the exchange, for sources that look at the response themselves.
fetch_outcome response_outcome(const std::string& where, boost::system::error_code ec,
                               const fetch_response& res);

// application/x-www-form-urlencoded body; every byte but ALPHA / DIGIT / "-._~" percent-encoded.
std::string form_urlencode(const std::vector<std::pair<std::string, std::string>>& fields);

// A permanent failure for an identity the source has no way to request.
fetch_failure unsupported_identity(std::string_view source, const identity_selector& identity,
                                   std::string_view hint);

// Reads a small local file whole (at most max_bytes); false and `error` set otherwise. Blocking:
// only for files on local disk whose size is bounded (token and key files). With
// follow_symlinks false, a symbolic link as the last component is refused. `error_number`, when
// given, receives the errno of a failed open (0 for the other failures).
bool read_small_file(const std::string& path, std::size_t max_bytes, std::string& out,
                     std::string& error, bool follow_symlinks = true, int* error_number = nullptr);

}  // namespace msiproxy
