// Process-wide counters and histograms, rendered in the Prometheus text format for /metrics.
// Thread-safe; label values are route names, resources and error types, never tokens.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

namespace msiproxy {

class metrics {
  public:
    metrics();
    ~metrics();
    metrics(const metrics&) = delete;
    metrics& operator=(const metrics&) = delete;

    // One finished proxied request. route "" is rendered as route="" (unmatched).
    void request_finished(std::string_view route, unsigned status, double seconds);
    // error is a Proxy-Status error type, e.g. "connection_refused".
    void upstream_error(std::string_view route, std::string_view error);
    // result: "success" | "failure"
    void token_refresh(std::string_view resource, std::string_view result);
    void token_expiry(std::string_view resource, double unix_seconds);
    void connection_opened();
    void connection_closed();
    std::int64_t connections_active() const;

    // Prometheus text exposition format 0.0.4, with # HELP and # TYPE lines.
    std::string render() const;

  private:
    struct impl;
    std::unique_ptr<impl> impl_;
};

}  // namespace msiproxy
