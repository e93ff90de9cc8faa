// Logger: one line per message on stderr, written with a single write(2) so
// lines from several workers never interleave.
#pragma once

#include <atomic>
#include <cstdarg>
#include <string>
#include <string_view>

#include "ingestd/plugin.h"

namespace ingestd {

enum class LogLevel : int { Error = 0, Warn = 1, Info = 2, Debug = 3 };

bool parse_log_level(std::string_view name, LogLevel *out);
const char *log_level_name(LogLevel level);

class Logger {
 public:
  explicit Logger(int fd = 2, LogLevel level = LogLevel::Info) : fd_(fd), level_(level) {}
  Logger(const Logger &) = delete;
  Logger &operator=(const Logger &) = delete;

  void set_level(LogLevel level) { level_.store(level, std::memory_order_relaxed); }
  LogLevel level() const { return level_.load(std::memory_order_relaxed); }
  bool enabled(LogLevel level) const { return level <= this->level(); }

  // `scope` names who speaks ("main", "worker 1", "outputs.redis").
  void log(LogLevel level, std::string_view scope, std::string_view message) const;
  void logf(LogLevel level, std::string_view scope, const char *fmt, ...) const
      __attribute__((format(printf, 4, 5)));
  void vlogf(LogLevel level, std::string_view scope, const char *fmt, va_list ap) const;

 private:
  int fd_;
  std::atomic<LogLevel> level_;
};

}  // namespace ingestd
