// Reads the claims of a JWT access token for `msiproxy token`: pure, no signature check (the
// token is only described to an operator, never trusted). Must take any input: it is fuzzed.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace msiproxy {

struct jwt_claims {
    std::vector<std::string> aud;  // a string or an array in the token
    std::string iss, tid, oid, appid, azp, sub, upn;
    std::vector<std::string> roles, scp;  // scp is a space-separated string in the token
    std::optional<std::int64_t> exp, nbf, iat;
};

// Base64url (RFC 4648 section 5) without padding; trailing '=' tolerated. nullopt on any other
// character or an impossible length.
std::optional<std::string> base64url_decode(std::string_view text);

// The claims of a compact JWS (header.payload.signature, header and payload JSON objects);
// nullopt for anything else: opaque tokens, encrypted (5-part) tokens, malformed input.
// Claims of unexpected types are left empty.
std::optional<jwt_claims> decode_jwt_claims(std::string_view token);

}  // namespace msiproxy
