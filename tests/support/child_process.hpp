// The built msiproxy binary as a child process for end-to-end tests, and a NOTIFY_SOCKET that
// records what it tells systemd.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <optional>
#include <string>
#include <vector>

namespace msiproxy::test {

// A unix datagram socket standing in for systemd's notification socket.
class notify_socket {
  public:
    explicit notify_socket(std::string path);
    ~notify_socket();
    notify_socket(const notify_socket&) = delete;
    notify_socket& operator=(const notify_socket&) = delete;
    const std::string& path() const { return path_; }
    // Waits for a datagram containing `line` (e.g. "READY=1"); earlier datagrams are kept in
    // received(). False on timeout.
    bool wait_for(const std::string& line,
                  std::chrono::milliseconds timeout = std::chrono::seconds(10));
    const std::vector<std::string>& received() const { return received_; }

  private:
    std::string path_;
    int fd_ = -1;
    std::vector<std::string> received_;
    std::size_t consumed_ = 0;  // received_ entries already matched by wait_for
};

// Runs `args` (args[0] is the executable) with extra environment variables and stdout/stderr
// appended to `log_file`. Killed (SIGKILL) at destruction if still running.
class child_process {
  public:
    child_process(std::vector<std::string> args, std::vector<std::string> extra_env,
                  const std::string& log_file);
    ~child_process();
    child_process(const child_process&) = delete;
    child_process& operator=(const child_process&) = delete;
    pid_t pid() const { return pid_; }
    void signal(int sig) const;
    // Exit status when it ended within the timeout (128+N when killed by signal N).
    std::optional<int> wait(std::chrono::milliseconds timeout = std::chrono::seconds(20));

  private:
    pid_t pid_ = -1;
    std::optional<int> status_;
};

}  // namespace msiproxy::test
