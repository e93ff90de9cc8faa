// Dead-letter file writer with size-capped rotation.
#include "engine/dead_letter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>

#include "json/json.h"

namespace ingestd {

namespace {
std::string iso_now() {
  using namespace std::chrono;
  auto now = system_clock::now();
  time_t t = system_clock::to_time_t(now);
  auto ms = duration_cast<milliseconds>(now.time_since_epoch()).count() % 1000;
  struct tm tm;
  gmtime_r(&t, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, static_cast<int>(ms));
  return buf;
}

void mkdirs(const std::string &dir) {
  for (size_t i = 1; i <= dir.size(); ++i) {
    if (i == dir.size() || dir[i] == '/') ::mkdir(dir.substr(0, i).c_str(), 0750);
  }
}
}  // namespace

DeadLetter::~DeadLetter() {
  if (fd_ >= 0) ::close(fd_);
}

int DeadLetter::open_locked() {
  if (fd_ >= 0 || open_failed_) return fd_;
  auto slash = path_.rfind('/');
  if (slash != std::string::npos && slash > 0) mkdirs(path_.substr(0, slash));
  fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
  if (fd_ < 0) {
    open_failed_ = true;
    log_->logf(LogLevel::Error, "dead-letter", "cannot open %s: %s; dead letters go to this log",
               path_.c_str(), std::strerror(errno));
    return fd_;
  }
  struct stat st;
  size_ = ::fstat(fd_, &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
  return fd_;
}

void DeadLetter::rotate_locked() {
  ::close(fd_);
  fd_ = -1;
  for (int i = keep_ - 1; i >= 1; --i) {
    std::string from = path_ + "." + std::to_string(i);
    std::string to = path_ + "." + std::to_string(i + 1);
    ::rename(from.c_str(), to.c_str());
  }
  if (keep_ >= 1) {
    ::rename(path_.c_str(), (path_ + ".1").c_str());
  } else {
    ::unlink(path_.c_str());
  }
  log_->logf(LogLevel::Warn, "dead-letter", "%s reached %llu bytes: rotated", path_.c_str(),
             static_cast<unsigned long long>(max_bytes_));
  open_locked();
}

void DeadLetter::write(std::string_view output, std::string_view tag, std::string_view reason,
                       std::string_view record_json) {
  std::string line = "{\"time\":\"" + iso_now() + "\",\"output\":";
  json::serialize(json::Value::string(output), &line);
  line += ",\"tag\":";
  json::serialize(json::Value::string(tag), &line);
  line += ",\"reason\":";
  json::serialize(json::Value::string(reason), &line);
  line += ",\"record\":";
  line += record_json;
  line += "}\n";
  lines_.add();
  std::lock_guard lock(mu_);
  int fd = open_locked();
  if (fd >= 0) {
    if (size_ > 0 && size_ + line.size() > max_bytes_) {
      rotate_locked();
      fd = fd_;
    }
    if (fd >= 0) {
      ssize_t n = ::write(fd, line.data(), line.size());
      if (n == static_cast<ssize_t>(line.size())) {
        size_ += line.size();
        return;
      }
      log_->logf(LogLevel::Error, "dead-letter", "write to %s failed: %s", path_.c_str(),
                 n < 0 ? std::strerror(errno) : "short write");
    }
  }
  line.pop_back();
  log_->log(LogLevel::Error, "dead-letter", line);
}

}  // namespace ingestd
