#include "support/captured_log.hpp"

#include <mutex>
#include <sstream>

#include <spdlog/sinks/base_sink.h>

#include "log/logging_testing.hpp"

namespace msiproxy::test {

// Lines as the daemon's formatter made them, appended under the sink's own lock.
class captured_log::sink final : public spdlog::sinks::base_sink<std::mutex> {
  public:
    std::string text() {
        std::lock_guard lock(mutex_);
        return text_;
    }

  protected:
    void sink_it_(const spdlog::details::log_msg& msg) override {
        spdlog::memory_buf_t buf;
        formatter_->format(msg, buf);
        text_.append(buf.data(), buf.size());
    }
    void flush_() override {}

  private:
    std::string text_;
};

captured_log::captured_log() : sink_(std::make_shared<sink>()) {
    msiproxy::set_log_sink_for_testing(sink_);
}

captured_log::captured_log(const msiproxy::log_config& cfg) : captured_log() {
    msiproxy::reset_log_rate_limits_for_testing();
    msiproxy::setup_logging(cfg);
    applied_ = true;
}

captured_log::~captured_log() {
    if (applied_) msiproxy::setup_logging({});
    msiproxy::set_log_sink_for_testing(nullptr);
}

std::string captured_log::text() const {
    return sink_->text();
}

std::vector<std::string> captured_log::lines() const {
    std::vector<std::string> result;
    std::istringstream in(text());
    std::string line;
    while (std::getline(in, line))
        result.push_back(line);
    return result;
}

}  // namespace msiproxy::test
