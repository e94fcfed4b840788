// JWT claim extraction: split on '.', base64url-decode, parse JSON without exceptions.
#include "identity/jwt.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace msiproxy {

namespace {

int b64url_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

std::optional<nlohmann::json> json_object(std::string_view part) {
    auto bytes = base64url_decode(part);
    if (!bytes) return std::nullopt;
    auto j = nlohmann::json::parse(*bytes, nullptr, false);
    if (j.is_discarded() || !j.is_object()) return std::nullopt;
    return j;
}

std::string string_claim(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

std::optional<std::int64_t> time_claim(const nlohmann::json& j, const char* key) {
    auto it = j.find(key);
    if (it == j.end()) return std::nullopt;
    if (it->is_number_integer()) return it->get<std::int64_t>();
    if (it->is_number_float()) {
        double d = it->get<double>();
        // Outside this range the cast would be undefined behaviour.
        if (!(d > -9.2e18 && d < 9.2e18)) return std::nullopt;
        return static_cast<std::int64_t>(d);
    }
    return std::nullopt;
}

std::vector<std::string> string_list_claim(const nlohmann::json& j, const char* key) {
    std::vector<std::string> out;
    auto it = j.find(key);
    if (it == j.end()) return out;
    if (it->is_string()) {
        out.push_back(it->get<std::string>());
    } else if (it->is_array()) {
        for (const auto& v : *it) {
            if (v.is_string()) out.push_back(v.get<std::string>());
        }
    }
    return out;
}

}  // namespace

std::optional<std::string> base64url_decode(std::string_view text) {
    while (!text.empty() && text.back() == '=')
        text.remove_suffix(1);
    if (text.size() % 4 == 1) return std::nullopt;  // 6 bits cannot end a byte
    std::string out;
    out.reserve(text.size() * 3 / 4);
    std::uint32_t acc = 0;
    int bits = 0;
    for (char c : text) {
        int v = b64url_value(c);
        if (v < 0) return std::nullopt;
        acc = (acc << 6) | static_cast<std::uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out += static_cast<char>((acc >> bits) & 0xFF);
        }
    }
    return out;
}

std::optional<jwt_claims> decode_jwt_claims(std::string_view token) {
    if (std::count(token.begin(), token.end(), '.') != 2) return std::nullopt;
    auto first = token.find('.');
    auto second = token.find('.', first + 1);
    auto header = json_object(token.substr(0, first));
    auto payload = json_object(token.substr(first + 1, second - first - 1));
    if (!header || !payload) return std::nullopt;
    const nlohmann::json& p = *payload;
    jwt_claims c;
    c.aud = string_list_claim(p, "aud");
    c.iss = string_claim(p, "iss");
    c.tid = string_claim(p, "tid");
    c.oid = string_claim(p, "oid");
    c.appid = string_claim(p, "appid");
    c.azp = string_claim(p, "azp");
    c.sub = string_claim(p, "sub");
    c.upn = string_claim(p, "upn");
    c.roles = string_list_claim(p, "roles");
    if (std::string scp = string_claim(p, "scp"); !scp.empty()) {
        std::size_t pos = 0;
        while (pos < scp.size()) {
            std::size_t end = scp.find(' ', pos);
            if (end == std::string::npos) end = scp.size();
            if (end > pos) c.scp.push_back(scp.substr(pos, end - pos));
            pos = end + 1;
        }
    }
    c.exp = time_claim(p, "exp");
    c.nbf = time_claim(p, "nbf");
    c.iat = time_claim(p, "iat");
    return c;
}

}  // namespace msiproxy
