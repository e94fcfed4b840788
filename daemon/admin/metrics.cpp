// The process-wide counters behind /metrics and their Prometheus text rendering (format 0.0.4).
// One mutex guards the labelled series; connections_active is an atomic since it moves per accept.
#include "admin/metrics.hpp"

#include <unistd.h>

#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <utility>

#include "version.hpp"

namespace msiproxy {

namespace {

// Upper bounds of msiproxy_request_duration_seconds; +Inf is implied by _count.
constexpr std::array<double, 13> duration_buckets{.001, .0025, .005, .01, .025, .05, .1,
                                                  .25,  .5,    1,    2.5, 5,    10};

struct histogram {
    std::array<std::uint64_t, duration_buckets.size()> counts{};  // per bucket, not cumulative
    double sum = 0;
    std::uint64_t count = 0;
};

using label_pair = std::pair<std::string, std::string>;

void append_number(std::string& out, double v) {
    if (std::isnan(v)) {
        out += "NaN";
    } else if (std::isinf(v)) {
        out += v > 0 ? "+Inf" : "-Inf";
    } else {
        char buf[32];
        auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
        out.append(buf, ec == std::errc{} ? end : buf);
    }
}

void append_number(std::string& out, std::uint64_t v) {
    char buf[24];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    out.append(buf, ec == std::errc{} ? end : buf);
}

// Label values escape exactly backslash, double quote and newline (exposition format 0.0.4).
void append_label_value(std::string& out, std::string_view v) {
    for (char c : v) {
        switch (c) {
            case '\\':
                out += "\\\\";
                break;
            case '"':
                out += "\\\"";
                break;
            case '\n':
                out += "\\n";
                break;
            default:
                out += c;
        }
    }
}

void append_header(std::string& out, std::string_view name, std::string_view type,
                   std::string_view help) {
    out.append("# HELP ").append(name).append(" ").append(help).append("\n");
    out.append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

// name{k1="v1",k2="v2"} value\n
void append_sample(std::string& out, std::string_view name,
                   std::initializer_list<std::pair<std::string_view, std::string_view>> labels,
                   auto value) {
    out.append(name);
    if (labels.size() != 0) {
        out += '{';
        bool first = true;
        for (const auto& [k, v] : labels) {
            if (!first) out += ',';
            first = false;
            out.append(k).append("=\"");
            append_label_value(out, v);
            out += '"';
        }
        out += '}';
    }
    out += ' ';
    append_number(out, value);
    out += '\n';
}

double unix_now() {
    using namespace std::chrono;
    return duration<double>(system_clock::now().time_since_epoch()).count();
}

// Resident set size from /proc/self/statm (second field, in pages); 0 when unreadable.
double resident_bytes() {
    std::ifstream statm("/proc/self/statm");
    std::uint64_t size = 0, resident = 0;
    if (!(statm >> size >> resident)) return 0;
    return static_cast<double>(resident) * static_cast<double>(::sysconf(_SC_PAGESIZE));
}

double open_fds() {
    std::error_code ec;
    std::uint64_t n = 0;
    for (std::filesystem::directory_iterator it("/proc/self/fd", ec), end; !ec && it != end;
         it.increment(ec)) {
        ++n;
    }
    return static_cast<double>(n);
}

}  // namespace

struct metrics::impl {
    mutable std::mutex mutex;
    std::map<std::pair<std::string, unsigned>, std::uint64_t> requests;
    std::map<std::string, histogram> durations;
    std::map<label_pair, std::uint64_t> upstream_errors;
    std::map<label_pair, std::uint64_t> token_refreshes;
    std::map<std::string, double> token_expiry;
    std::atomic<std::int64_t> connections{0};
    double start_time = unix_now();
};

metrics::metrics() : impl_(std::make_unique<impl>()) {}
metrics::~metrics() = default;

void metrics::request_finished(std::string_view route, unsigned status, double seconds) {
    std::lock_guard lock(impl_->mutex);
    ++impl_->requests[{std::string(route), status}];
    auto& h = impl_->durations[std::string(route)];
    for (std::size_t i = 0; i < duration_buckets.size(); ++i) {
        if (seconds <= duration_buckets[i]) {
            ++h.counts[i];
            break;
        }
    }
    h.sum += seconds;
    ++h.count;
}

void metrics::upstream_error(std::string_view route, std::string_view error) {
    std::lock_guard lock(impl_->mutex);
    ++impl_->upstream_errors[{std::string(route), std::string(error)}];
}

void metrics::token_refresh(std::string_view resource, std::string_view result) {
    std::lock_guard lock(impl_->mutex);
    ++impl_->token_refreshes[{std::string(resource), std::string(result)}];
}

void metrics::token_expiry(std::string_view resource, double unix_seconds) {
    std::lock_guard lock(impl_->mutex);
    impl_->token_expiry[std::string(resource)] = unix_seconds;
}

void metrics::connection_opened() {
    impl_->connections.fetch_add(1, std::memory_order_relaxed);
}

std::int64_t metrics::connections_active() const {
    return impl_->connections.load(std::memory_order_relaxed);
}

void metrics::connection_closed() {
    impl_->connections.fetch_sub(1, std::memory_order_relaxed);
}

std::string metrics::render() const {
    std::string out;
    out.reserve(4096);
    {
        std::lock_guard lock(impl_->mutex);

        append_header(out, "msiproxy_requests_total", "counter",
                      "Proxied requests finished, by route and HTTP status.");
        for (const auto& [key, n] : impl_->requests) {
            const std::string code = std::to_string(key.second);
            append_sample(out, "msiproxy_requests_total", {{"route", key.first}, {"code", code}},
                          n);
        }

        append_header(out, "msiproxy_request_duration_seconds", "histogram",
                      "Time from request head received to response finished, by route.");
        for (const auto& [route, h] : impl_->durations) {
            std::uint64_t cumulative = 0;
            std::string le;
            for (std::size_t i = 0; i < duration_buckets.size(); ++i) {
                cumulative += h.counts[i];
                le.clear();
                append_number(le, duration_buckets[i]);
                append_sample(out, "msiproxy_request_duration_seconds_bucket",
                              {{"route", route}, {"le", le}}, cumulative);
            }
            append_sample(out, "msiproxy_request_duration_seconds_bucket",
                          {{"route", route}, {"le", "+Inf"}}, h.count);
            append_sample(out, "msiproxy_request_duration_seconds_sum", {{"route", route}}, h.sum);
            append_sample(out, "msiproxy_request_duration_seconds_count", {{"route", route}},
                          h.count);
        }

        append_header(
            out, "msiproxy_upstream_errors_total", "counter",
            "Requests that failed towards the upstream, by route and Proxy-Status error.");
        for (const auto& [key, n] : impl_->upstream_errors) {
            append_sample(out, "msiproxy_upstream_errors_total",
                          {{"route", key.first}, {"error", key.second}}, n);
        }

        append_header(out, "msiproxy_token_refreshes_total", "counter",
                      "Token acquisitions from the managed identity, by resource and result.");
        for (const auto& [key, n] : impl_->token_refreshes) {
            append_sample(out, "msiproxy_token_refreshes_total",
                          {{"resource", key.first}, {"result", key.second}}, n);
        }

        append_header(out, "msiproxy_token_expiry_timestamp_seconds", "gauge",
                      "Unix time at which the cached token for a resource expires.");
        for (const auto& [resource, t] : impl_->token_expiry) {
            append_sample(out, "msiproxy_token_expiry_timestamp_seconds", {{"resource", resource}},
                          t);
        }
    }

    append_header(out, "msiproxy_connections_active", "gauge",
                  "Downstream proxy connections currently open.");
    append_sample(out, "msiproxy_connections_active", {},
                  static_cast<double>(impl_->connections.load(std::memory_order_relaxed)));

    append_header(out, "msiproxy_build_info", "gauge", "Always 1; the label carries the version.");
    append_sample(out, "msiproxy_build_info", {{"version", MSIPROXY_VERSION}}, 1.0);

    append_header(out, "process_start_time_seconds", "gauge",
                  "Start time of the process since the Unix epoch in seconds.");
    append_sample(out, "process_start_time_seconds", {}, impl_->start_time);
    append_header(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.");
    append_sample(out, "process_resident_memory_bytes", {}, resident_bytes());
    append_header(out, "process_open_fds", "gauge", "Number of open file descriptors.");
    append_sample(out, "process_open_fds", {}, open_fds());
    return out;
}

}  // namespace msiproxy
