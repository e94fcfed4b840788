// What the fakes remember about a request they received, and a thread-safe list of them that
// tests can read and wait on (condition variable, never sleeps).
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace msiproxy::test {

using header_list = std::vector<std::pair<std::string, std::string>>;

// Case-insensitive header lookups over a header_list.
std::optional<std::string> find_header(const header_list& headers, std::string_view name);
std::size_t count_header(const header_list& headers, std::string_view name);

struct recorded_request {
    std::uint64_t connection_id = 0;  // server_thread's accept counter; equal ids = same connection
    std::string method;
    std::string target;                        // as received (origin-form for a proxied request)
    std::string path;                          // target without the query
    std::map<std::string, std::string> query;  // percent-decoded query parameters
    unsigned version = 11;                     // 10 or 11
    header_list headers;                       // in order, names as received
    std::uint64_t body_bytes = 0;
    std::uint64_t body_checksum = 0;  // checksum (byte_pattern.hpp) of the body bytes
    bool body_complete = true;        // false when the connection failed mid-body
    std::chrono::steady_clock::time_point received_at{};  // set by request_log::add

    std::optional<std::string> header(std::string_view name) const {
        return find_header(headers, name);
    }
    bool has_header(std::string_view name) const { return count_header(headers, name) > 0; }
};

// Thread-safe append-only list with waits.
class request_log {
  public:
    void add(recorded_request r);
    std::vector<recorded_request> all() const;
    std::size_t size() const;
    void clear();
    // Blocks until at least n requests were recorded or the timeout passes; true if they were.
    bool wait_for(std::size_t n,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  private:
    mutable std::mutex mutex_;
    mutable std::condition_variable changed_;
    std::vector<recorded_request> requests_;
};

}  // namespace msiproxy::test
