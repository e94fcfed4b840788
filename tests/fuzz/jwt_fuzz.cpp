// Fuzz target: JWT claims decoding for `msiproxy token` and base64url on its own.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "identity/jwt.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view in(reinterpret_cast<const char*>(data), size);
    (void)msiproxy::decode_jwt_claims(in);
    (void)msiproxy::base64url_decode(in);
    return 0;
}
