// spdlog setup for the daemon: one stderr sink shared by the default and "access" loggers, our
// own formatter for the text and JSON-lines formats, the access line and rate-limited warnings.
#include "log/logging.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>
#include <stdexcept>

#include <spdlog/formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "common/time_format.hpp"
#include "log/logging_testing.hpp"

namespace msiproxy {

namespace {

enum class line_format { text, json };

std::string_view level_name(spdlog::level::level_enum l) {
    switch (l) {
        case spdlog::level::trace:
            return "trace";
        case spdlog::level::debug:
            return "debug";
        case spdlog::level::info:
            return "info";
        case spdlog::level::warn:
            return "warn";
        case spdlog::level::err:
            return "error";
        case spdlog::level::critical:
            return "crit";
        default:
            return "off";
    }
}

spdlog::level::level_enum parse_level(const std::string& s) {
    if (s == "trace") return spdlog::level::trace;
    if (s == "debug") return spdlog::level::debug;
    if (s == "info") return spdlog::level::info;
    if (s == "warn") return spdlog::level::warn;
    if (s == "error") return spdlog::level::err;
    if (s == "off") return spdlog::level::off;
    throw std::invalid_argument("unknown log level \"" + s + "\"");
}

line_format parse_format(const std::string& s) {
    if (s == "text") return line_format::text;
    if (s == "json") return line_format::json;
    throw std::invalid_argument("unknown log format \"" + s + "\"");
}

void append(spdlog::memory_buf_t& dest, std::string_view s) {
    dest.append(s.data(), s.data() + s.size());
}

// Text lines must stay one line per record whatever the message holds (no log forging).
void append_escaped_text(spdlog::memory_buf_t& dest, std::string_view s) {
    for (char c : s) {
        if (c == '\n') {
            append(dest, "\\n");
        } else if (c == '\r') {
            append(dest, "\\r");
        } else if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
            append(dest, buf);
        } else {
            dest.push_back(c);
        }
    }
}

std::string json_dump(const nlohmann::ordered_json& j) {
    // replace, not throw: a message carrying invalid UTF-8 must still be logged.
    return j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

class line_formatter final : public spdlog::formatter {
  public:
    explicit line_formatter(line_format f) : format_(f) {}

    void format(const spdlog::details::log_msg& msg, spdlog::memory_buf_t& dest) override {
        const std::string_view payload(msg.payload.data(), msg.payload.size());
        // Both loggers share the sink and so this formatter; access lines are told apart by
        // logger name. log_access already built the whole JSON object.
        const std::string_view logger(msg.logger_name.data(), msg.logger_name.size());
        if (format_ == line_format::json && logger == "access") {
            append(dest, payload);
            dest.push_back('\n');
            return;
        }
        switch (format_) {
            case line_format::text: {
                append(dest, to_rfc3339_ms(msg.time));
                dest.push_back(' ');
                const auto name = level_name(msg.level);
                // The colour sink paints this range when stderr is a terminal.
                msg.color_range_start = dest.size();
                append(dest, name);
                msg.color_range_end = dest.size();
                for (std::size_t i = name.size(); i < 6; ++i)
                    dest.push_back(' ');
                append_escaped_text(dest, payload);
                break;
            }
            case line_format::json: {
                nlohmann::ordered_json j;
                j["ts"] = to_rfc3339_ms(msg.time);
                j["level"] = level_name(msg.level);
                j["msg"] = payload;
                append(dest, json_dump(j));
                break;
            }
        }
        dest.push_back('\n');
    }

    std::unique_ptr<spdlog::formatter> clone() const override {
        return std::make_unique<line_formatter>(format_);
    }

  private:
    line_format format_;
};

// All state behind setup_logging; the loggers are created once per sink and then only
// reconfigured (set_level is atomic, set_formatter takes the sink's mutex), so a reload never
// races with threads that are logging.
struct logging_state {
    std::mutex mutex;
    std::shared_ptr<spdlog::sinks::sink> stderr_sink;
    std::shared_ptr<spdlog::sinks::sink> test_sink;
    std::shared_ptr<spdlog::sinks::sink> current_sink;
    std::shared_ptr<spdlog::logger> main;
    std::shared_ptr<spdlog::logger> access;
    log_config last;
    std::atomic<bool> access_enabled{true};
    std::atomic<bool> json{false};
};

logging_state& state() {
    static logging_state s;
    return s;
}

void apply_locked(logging_state& s, const log_config& cfg) {
    const auto level = parse_level(cfg.level);
    const auto format = parse_format(cfg.format);

    auto sink = s.test_sink ? s.test_sink : s.stderr_sink;
    if (!sink) {
        sink = s.stderr_sink =
            std::make_shared<spdlog::sinks::stderr_color_sink_mt>(spdlog::color_mode::automatic);
    }
    if (!s.main || s.current_sink != sink) {
        s.current_sink = sink;
        s.main = std::make_shared<spdlog::logger>("msiproxy", sink);
        s.access = std::make_shared<spdlog::logger>("access", sink);
        spdlog::set_default_logger(s.main);
        spdlog::drop("access");
        spdlog::register_logger(s.access);
    }
    // One sink, one formatter for both loggers (a formatter belongs to the sink). A log_access
    // racing a reload may write one line in the old format.
    s.json = format == line_format::json;
    s.main->set_formatter(std::make_unique<line_formatter>(format));
    s.main->set_level(level);
    s.main->flush_on(spdlog::level::trace);
    // The access log is not a severity stream: only "off" silences it, like nginx's access_log.
    s.access->set_level(level == spdlog::level::off ? spdlog::level::off : spdlog::level::info);
    s.access_enabled = cfg.access;
    s.last = cfg;
}

void append_kv(std::string& out, std::string_view key, std::string_view value) {
    if (!out.empty()) out += ' ';
    out.append(key).append("=");
    if (value.empty()) {
        out += '-';
        return;
    }
    // Values with spaces, quotes or control characters are quoted so the line splits cleanly.
    bool plain = true;
    for (char c : value) {
        if (c == ' ' || c == '"' || c == '\\' || static_cast<unsigned char>(c) < 0x20 ||
            c == 0x7f) {
            plain = false;
            break;
        }
    }
    if (plain) {
        out.append(value);
        return;
    }
    out += '"';
    for (char c : value) {
        if (c == '"' || c == '\\') {
            out += '\\';
            out += c;
        } else if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", static_cast<unsigned char>(c));
            out += buf;
        } else {
            out += c;
        }
    }
    out += '"';
}

std::string seconds_text(double s) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.3f", s);
    return buf;
}

struct rate_entry {
    std::chrono::steady_clock::time_point last;
    std::uint64_t suppressed = 0;
};

struct rate_limiter {
    std::mutex mutex;
    std::map<std::string, rate_entry, std::less<>> entries;
};

rate_limiter& limiter() {
    static rate_limiter r;
    return r;
}

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? char(c - 'A' + 'a') : c; };
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

}  // namespace

void setup_logging(const log_config& cfg) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    apply_locked(s, cfg);
}

void set_log_sink_for_testing(std::shared_ptr<spdlog::sinks::sink> sink) {
    auto& s = state();
    std::lock_guard lock(s.mutex);
    s.test_sink = std::move(sink);
    apply_locked(s, s.last);
}

void reset_log_rate_limits_for_testing() {
    auto& r = limiter();
    std::lock_guard lock(r.mutex);
    r.entries.clear();
}

void log_access(const access_entry& e) {
    auto& s = state();
    if (!s.access_enabled.load(std::memory_order_relaxed)) return;
    std::shared_ptr<spdlog::logger> logger;
    {
        std::lock_guard lock(s.mutex);
        if (!s.access) apply_locked(s, s.last);
        logger = s.access;
    }
    if (!logger->should_log(spdlog::level::info)) return;

    if (s.json.load(std::memory_order_relaxed)) {
        nlohmann::ordered_json j;
        j["ts"] = to_rfc3339_ms(std::chrono::system_clock::now());
        j["type"] = "access";
        j["route"] = e.route;
        j["method"] = e.method;
        j["host"] = e.host;
        j["path"] = e.path;
        j["status"] = e.status;
        j["bytes_in"] = e.bytes_in;
        j["bytes_out"] = e.bytes_out;
        j["duration"] = e.total_seconds;
        j["upstream"] = e.upstream_seconds;
        if (e.proxy_error.empty()) {
            j["error"] = nullptr;
        } else {
            j["error"] = e.proxy_error;
        }
        j["client"] = e.client;
        logger->info(json_dump(j));
        return;
    }

    std::string line;
    line.reserve(256);
    append_kv(line, "route", e.route);
    append_kv(line, "method", e.method);
    append_kv(line, "host", e.host);
    append_kv(line, "path", e.path);
    append_kv(line, "status", std::to_string(e.status));
    append_kv(line, "bytes_in", std::to_string(e.bytes_in));
    append_kv(line, "bytes_out", std::to_string(e.bytes_out));
    append_kv(line, "duration", seconds_text(e.total_seconds));
    append_kv(line, "upstream", seconds_text(e.upstream_seconds));
    append_kv(line, "error", e.proxy_error);
    append_kv(line, "client", e.client);
    logger->info(line);
}

void log_rate_limited(std::string_view key, int level, std::string_view message, double window) {
    const auto now = std::chrono::steady_clock::now();
    std::uint64_t suppressed = 0;
    {
        auto& r = limiter();
        std::lock_guard lock(r.mutex);
        auto it = r.entries.find(key);
        if (it == r.entries.end()) {
            r.entries.emplace(std::string(key), rate_entry{now, 0});
        } else if (std::chrono::duration<double>(now - it->second.last).count() < window) {
            ++it->second.suppressed;
            return;
        } else {
            suppressed = it->second.suppressed;
            it->second = rate_entry{now, 0};
        }
    }
    auto lvl = static_cast<spdlog::level::level_enum>(level);
    if (level < spdlog::level::trace || level >= spdlog::level::off) lvl = spdlog::level::warn;
    if (suppressed == 0) {
        spdlog::log(lvl, "{}", message);
    } else {
        spdlog::log(lvl, "{} ({} similar messages suppressed)", message, suppressed);
    }
}

std::string redact_header(std::string_view name, std::string_view value) {
    if (!iequals(name, "authorization") && !iequals(name, "proxy-authorization")) {
        return std::string(value);
    }
    // Keep the scheme (it tells Bearer from Basic), drop everything after it.
    auto start = value.find_first_not_of(" \t");
    if (start == std::string_view::npos) return "<redacted>";
    auto rest = value.substr(start);
    auto end = rest.find_first_of(" \t");
    if (end == std::string_view::npos) return "<redacted>";
    return std::string(rest.substr(0, end)) + " <redacted>";
}

}  // namespace msiproxy
