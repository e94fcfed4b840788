// captured_log: every formatted line of the daemon's loggers (main and access) collected in
// memory for the object's lifetime, through the test sink hook of log/logging; stderr after.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "log/logging.hpp"

namespace msiproxy::test {

class captured_log {
  public:
    // Capture only: the logging settings stay whatever the code under test applies (an app
    // started by proxy_fixture applies its own [log]).
    captured_log();
    // Capture, with `cfg` applied and the rate limits forgotten; the defaults are applied again
    // at the end.
    explicit captured_log(const msiproxy::log_config& cfg);
    ~captured_log();
    captured_log(const captured_log&) = delete;
    captured_log& operator=(const captured_log&) = delete;

    // What was logged so far; safe while other threads are logging.
    std::string text() const;
    std::vector<std::string> lines() const;

    class sink;

  private:
    std::shared_ptr<sink> sink_;
    bool applied_ = false;
};

}  // namespace msiproxy::test
