// A directory under the system temp dir that lives as long as the object: tests write configs,
// certificates and keys into it and it is removed, with its contents, at destruction.
#pragma once

#include <filesystem>
#include <string>
#include <string_view>

namespace msiproxy::test {

class temp_dir {
  public:
    // Creates a fresh, private (0700) directory. Throws std::system_error when it cannot.
    temp_dir();
    ~temp_dir();
    temp_dir(const temp_dir&) = delete;
    temp_dir& operator=(const temp_dir&) = delete;

    const std::filesystem::path& path() const { return path_; }
    // Writes `content` to path()/name (replacing it) and returns the full path as a string.
    std::string write_file(std::string_view name, std::string_view content) const;

  private:
    std::filesystem::path path_;
};

}  // namespace msiproxy::test
