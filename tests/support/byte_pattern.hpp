// The known byte pattern that streamed test bodies carry, and the cheap checksum both ends
// compute over it, so a 256 MiB transfer is verified without ever being held in memory.
#pragma once

#include <cstddef>
#include <cstdint>

namespace msiproxy::test {

// Byte at absolute offset i of a pattern body: i mod 251 (a prime, so a dropped or repeated
// power-of-two sized block changes the checksum).
inline char pattern_byte(std::uint64_t offset) {
    return static_cast<char>(offset % 251);
}

// Fills out[0..n) with the pattern bytes starting at `offset`.
void fill_pattern(char* out, std::size_t n, std::uint64_t offset);

// Running FNV-1a (64 bit): order sensitive and split-independent, so sender and receiver agree
// whatever buffer sizes they use.
class checksum {
  public:
    void update(const void* data, std::size_t n);
    std::uint64_t value() const { return state_; }
    std::uint64_t bytes() const { return bytes_; }

  private:
    std::uint64_t state_ = 14695981039346656037ull;
    std::uint64_t bytes_ = 0;
};

// Checksum of the first n pattern bytes, computed the same way as a receiver would.
std::uint64_t pattern_checksum(std::uint64_t n);

}  // namespace msiproxy::test
