// The dead-letter file: records an output can never deliver, one JSON line
// each ({"time","output","reason","record"}), so nothing is dropped silently.
// Shared by all workers: every line is one write(2) on an O_APPEND descriptor,
// so lines never interleave.
#pragma once

#include <mutex>
#include <string>
#include <string_view>

#include "util/log.h"

namespace ingestd {

class DeadLetter {
 public:
  DeadLetter(std::string path, const Logger *log) : path_(std::move(path)), log_(log) {}
  ~DeadLetter();
  DeadLetter(const DeadLetter &) = delete;
  DeadLetter &operator=(const DeadLetter &) = delete;

  // Appends one line. When the file cannot be written the line goes to the
  // log instead (at error level), never nowhere.
  void write(std::string_view output, std::string_view reason, std::string_view record_json);
  const std::string &path() const { return path_; }

 private:
  int open_locked();
  std::string path_;
  const Logger *log_;
  std::mutex mu_;  // guards fd_ opening only; taken on the (rare) dead-letter path
  int fd_ = -1;
  bool open_failed_ = false;
};

}  // namespace ingestd
