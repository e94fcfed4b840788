// fetch_token and the small helpers every token source shares.
#include "identity/sources/source_util.hpp"

#include <cerrno>
#include <cstring>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <boost/url/parse.hpp>

namespace msiproxy {

std::string endpoint_label(const std::string& url) {
    if (auto u = boost::urls::parse_absolute_uri(url)) {
        return std::string(u->scheme()) + "://" + std::string(u->encoded_host_and_port()) +
               std::string(u->encoded_path());
    }
    return url;
}

fetch_outcome response_outcome(const std::string& where, boost::system::error_code ec,
                               const fetch_response& res) {
    if (ec) {
        fetch_failure f;
        f.kind = failure_kind::unreachable;
        f.message = where + ": " + ec.message();
        return f;
    }
    if (res.status < 200 || res.status > 299) {
        auto f = classify_http_failure(res.status, res.body, res.header("retry-after"));
        f.message = where + ": " + f.message;
        return f;
    }
    auto out = parse_token_response(res.body, std::chrono::system_clock::now());
    if (auto* f = std::get_if<fetch_failure>(&out)) f->message = where + ": " + f->message;
    return out;
}

boost::asio::awaitable<fetch_outcome> fetch_token(boost::asio::any_io_executor ex,
                                                  boost::asio::ssl::context& tls,
                                                  fetch_request req) {
    std::string where = endpoint_label(req.url);
    auto [ec, res] = co_await http_fetch(std::move(ex), tls, std::move(req));
    co_return response_outcome(where, ec, res);
}

std::string form_urlencode(const std::vector<std::pair<std::string, std::string>>& fields) {
    static constexpr char hex[] = "0123456789ABCDEF";
    auto encode = [](std::string& out, std::string_view s) {
        for (unsigned char c : s) {
            if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '.' || c == '_' || c == '~') {
                out += static_cast<char>(c);
            } else {
                out += '%';
                out += hex[c >> 4];
                out += hex[c & 15];
            }
        }
    };
    std::string out;
    for (const auto& [k, v] : fields) {
        if (!out.empty()) out += '&';
        encode(out, k);
        out += '=';
        encode(out, v);
    }
    return out;
}

fetch_failure unsupported_identity(std::string_view source, const identity_selector& identity,
                                   std::string_view hint) {
    fetch_failure f;
    f.kind = failure_kind::identity_not_found;
    f.retryable = false;
    f.message = std::string(source) + " cannot request the identity " + identity.describe();
    if (!hint.empty()) f.message += ": " + std::string(hint);
    return f;
}

bool read_small_file(const std::string& path, std::size_t max_bytes, std::string& out,
                     std::string& error, bool follow_symlinks, int* error_number) {
    if (error_number) *error_number = 0;
    const int flags =
        O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK | (follow_symlinks ? 0 : O_NOFOLLOW);
    int fd = ::open(path.c_str(), flags);
    if (fd < 0) {
        if (error_number) *error_number = errno;
        error = "cannot open " + path + ": " + std::strerror(errno);
        return false;
    }
    // Size checked on the opened file, so the file cannot be swapped between check and read.
    struct stat st {};
    bool ok = ::fstat(fd, &st) == 0;
    if (!ok) {
        error = "cannot stat " + path + ": " + std::strerror(errno);
    } else if (!S_ISREG(st.st_mode)) {
        error = path + " is not a regular file";
        ok = false;
    } else if (static_cast<std::size_t>(st.st_size) > max_bytes) {
        error = path + " is larger than " + std::to_string(max_bytes) + " bytes";
        ok = false;
    }
    out.clear();
    if (ok) {
        // One byte more than allowed tells a file that grew after fstat.
        out.resize(max_bytes + 1);
        std::size_t got = 0;
        while (got < out.size()) {
            ssize_t n = ::read(fd, out.data() + got, out.size() - got);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) {
                error = "cannot read " + path + ": " + std::strerror(errno);
                ok = false;
                break;
            }
            if (n == 0) break;
            got += static_cast<std::size_t>(n);
        }
        out.resize(got);
        if (ok && got > max_bytes) {
            error = path + " is larger than " + std::to_string(max_bytes) + " bytes";
            ok = false;
        }
    }
    ::close(fd);
    return ok;
}

}  // namespace msiproxy
