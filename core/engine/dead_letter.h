// The dead-letter file: records an output can never deliver, one JSON line
// each ({"time","output","tag","reason","record"}), so nothing is dropped
// silently. Shared by all workers; a line is one write(2) under a mutex (the
// dead-letter path is rare, never the request path). The file rotates at
// `max_bytes` into PATH.1 ... PATH.<keep>; `ingestd --replay` sends a file's
// records to an output again.
#pragma once

#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "util/log.h"
#include "util/metrics.h"

namespace ingestd {

class DeadLetter {
 public:
  DeadLetter(std::string path, const Logger *log, uint64_t max_bytes = 100ull << 20, int keep = 5)
      : path_(std::move(path)), log_(log), max_bytes_(max_bytes), keep_(keep) {}
  ~DeadLetter();
  DeadLetter(const DeadLetter &) = delete;
  DeadLetter &operator=(const DeadLetter &) = delete;

  // Appends one line. When the file cannot be written the line goes to the
  // log instead (at error level), never nowhere.
  void write(std::string_view output, std::string_view tag, std::string_view reason,
             std::string_view record_json);
  const std::string &path() const { return path_; }
  uint64_t lines_written() const { return lines_.value(); }

 private:
  int open_locked();
  void rotate_locked();
  std::string path_;
  const Logger *log_;
  uint64_t max_bytes_;
  int keep_;
  std::mutex mu_;
  int fd_ = -1;
  uint64_t size_ = 0;
  bool open_failed_ = false;
  Counter lines_;
};

}  // namespace ingestd
