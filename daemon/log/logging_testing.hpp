// Test hook for daemon/log: route every log line (default and access logger) to a given sink,
// so that tests can assert on the formatted output. Not for production code.
#pragma once

#include <memory>

#include <spdlog/sinks/sink.h>

namespace msiproxy {

// Replaces the stderr sink with `sink` (nullptr restores stderr) and re-applies the last
// setup_logging() config, or the defaults when it was never called. Lines reach the sink
// already formatted by msiproxy's formatter. Not thread-safe against concurrent logging.
void set_log_sink_for_testing(std::shared_ptr<spdlog::sinks::sink> sink);

// Forgets the rate-limit state of log_rate_limited, so tests start from a clean window.
void reset_log_rate_limits_for_testing();

}  // namespace msiproxy
