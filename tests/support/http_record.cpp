// request_log and the header helpers shared by the fakes and the test client.
// Header names compare case-insensitively, as HTTP says; values compare exactly.
#include "support/http_record.hpp"

#include <algorithm>
#include <cctype>

namespace msiproxy::test {
namespace {

bool iequals(std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
               return std::tolower(static_cast<unsigned char>(x)) ==
                      std::tolower(static_cast<unsigned char>(y));
           });
}

}  // namespace

std::optional<std::string> find_header(const header_list& headers, std::string_view name) {
    for (const auto& [k, v] : headers)
        if (iequals(k, name)) return v;
    return std::nullopt;
}

std::size_t count_header(const header_list& headers, std::string_view name) {
    return static_cast<std::size_t>(std::count_if(
        headers.begin(), headers.end(), [&](const auto& kv) { return iequals(kv.first, name); }));
}

void request_log::add(recorded_request r) {
    r.received_at = std::chrono::steady_clock::now();
    {
        std::lock_guard lock(mutex_);
        requests_.push_back(std::move(r));
    }
    changed_.notify_all();
}

std::vector<recorded_request> request_log::all() const {
    std::lock_guard lock(mutex_);
    return requests_;
}

std::size_t request_log::size() const {
    std::lock_guard lock(mutex_);
    return requests_.size();
}

void request_log::clear() {
    std::lock_guard lock(mutex_);
    requests_.clear();
}

bool request_log::wait_for(std::size_t n, std::chrono::milliseconds timeout) const {
    std::unique_lock lock(mutex_);
    return changed_.wait_for(lock, timeout, [&] { return requests_.size() >= n; });
}

}  // namespace msiproxy::test
