// CRC-32C (Castagnoli), the checksum of every segment-log frame.
//
// Uses the SSE4.2 crc32 instruction when the CPU has it (checked once), else
// a slice-by-8 table built at compile time. Pure functions, no state.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ingestd {

// Extends `crc` (the value returned for the bytes before; 0 to start) over
// `n` bytes. crc32c_extend(crc32c_extend(0, a), b) == crc32c(a + b).
uint32_t crc32c_extend(uint32_t crc, const void *data, size_t n);

inline uint32_t crc32c(std::string_view bytes) {
  return crc32c_extend(0, bytes.data(), bytes.size());
}

// The portable implementation alone (for tests comparing both paths).
uint32_t crc32c_extend_portable(uint32_t crc, const void *data, size_t n);

}  // namespace ingestd
