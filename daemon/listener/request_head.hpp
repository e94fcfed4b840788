// The pure checks a session applies to a request head: where the head ends, its raw syntax,
// the request target and the framing rule. No I/O and no Beast, so they can be fuzzed alone.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace msiproxy {

// Offset just past the empty line that ends the head ("\n\n" or "\n\r\n"), searching for line
// ends from `from`; npos while the head is incomplete. Leading empty lines must be gone already.
std::size_t find_head_end(std::string_view data, std::size_t from = 0);

// The request head's raw text, before Beast parses it: RFC 9112 forbids obs-fold (a line
// starting with whitespace) in requests and requires CRLF line ends; a proxy that let either
// through could disagree with the upstream about where headers or messages end.
bool raw_head_is_clean(std::string_view head);

// Header field lines in a complete head (CRLF line ends): the lines between the request line
// and the empty line that ends it.
std::size_t header_field_count(std::string_view head);

struct target_info {
    bool absolute = false;  // absolute-form (forward proxy)
    bool tls = false;       // absolute-form https://
    std::string host;       // lower-case, no brackets
    std::uint16_t port = 80;
    std::string authority;  // as the client wrote it (absolute-form) or the Host header
    std::string path;       // origin-form path + query, starts with '/'
};

// Reads the request target (origin-form with exactly one Host header, or absolute http(s)://).
// host_count is the number of Host fields, host the first one's value. On failure returns false
// with `why` set to the message for the client.
bool parse_request_target(std::string_view target, std::size_t host_count, std::string_view host,
                          target_info& t, std::string& why);

// Ambiguous framing (RFC 9112 section 6.3): true when the request may be forwarded, i.e. it has
// no Transfer-Encoding, or exactly one field whose value is "chunked" and no Content-Length.
// Beast itself refuses Content-Length with Transfer-Encoding and differing Content-Lengths.
bool transfer_encoding_acceptable(std::size_t te_count, std::string_view te,
                                  bool has_content_length);

}  // namespace msiproxy
