// Logger implementation: timestamped lines, one write(2) each.
#include "util/log.h"

#include <sys/time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <ctime>

namespace ingestd {

namespace {
constexpr const char *kNames[] = {"error", "warn", "info", "debug"};
}

bool parse_log_level(std::string_view name, LogLevel *out) {
  for (int i = 0; i < 4; ++i) {
    if (name == kNames[i]) {
      *out = static_cast<LogLevel>(i);
      return true;
    }
  }
  return false;
}

const char *log_level_name(LogLevel level) {
  return kNames[static_cast<int>(level)];
}

void Logger::log(LogLevel level, std::string_view scope, std::string_view message) const {
  if (!enabled(level)) return;
  struct timeval tv;
  gettimeofday(&tv, nullptr);
  struct tm tm;
  gmtime_r(&tv.tv_sec, &tm);
  char stamp[96];
  std::snprintf(stamp, sizeof stamp, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(tv.tv_usec / 1000));
  std::string line;
  line.reserve(64 + scope.size() + message.size());
  line += stamp;
  line += " [";
  line += log_level_name(level);
  line += "] ";
  if (!scope.empty()) {
    line += '[';
    line += scope;
    line += "] ";
  }
  line += message;
  line += '\n';
  const char *p = line.data();
  size_t left = line.size();
  while (left > 0) {
    ssize_t n = ::write(fd_, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;  // nowhere to report a failing log
    p += n;
    left -= static_cast<size_t>(n);
  }
}

void Logger::vlogf(LogLevel level, std::string_view scope, const char *fmt, va_list ap) const {
  if (!enabled(level)) return;
  char buf[1024];
  va_list copy;
  va_copy(copy, ap);
  int n = std::vsnprintf(buf, sizeof buf, fmt, copy);
  va_end(copy);
  if (n < 0) return;
  if (static_cast<size_t>(n) < sizeof buf) {
    log(level, scope, std::string_view(buf, static_cast<size_t>(n)));
    return;
  }
  std::string big(static_cast<size_t>(n) + 1, '\0');
  std::vsnprintf(big.data(), big.size(), fmt, ap);
  big.resize(static_cast<size_t>(n));
  log(level, scope, big);
}

void Logger::logf(LogLevel level, std::string_view scope, const char *fmt, ...) const {
  va_list ap;
  va_start(ap, fmt);
  vlogf(level, scope, fmt, ap);
  va_end(ap);
}

}  // namespace ingestd
