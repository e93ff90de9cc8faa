// Helpers shared by the storage tests: temp dirs, an instrumented StorageIo,
// file surgery.
#pragma once

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "storage/storage_io.h"

namespace ingestd::testing {

// A fresh directory under $TMPDIR, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    const char *base = std::getenv("TMPDIR");
    std::string tmpl = std::string(base && *base ? base : "/tmp") + "/ingestd-storage-XXXXXX";
    char *p = ::mkdtemp(tmpl.data());
    EXPECT_NE(p, nullptr);
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir &) = delete;
  TempDir &operator=(const TempDir &) = delete;
  const std::string &path() const { return path_; }
  std::string sub(const std::string &name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

// Counts syncs and injects failures. Thread-safe (atomics).
class TestIo : public StorageIo {
 public:
  std::atomic<int> fdatasyncs{0};
  std::atomic<int> fsyncs{0};
  std::atomic<int> writes{0};
  // Writes fail with write_errno once this many more bytes were written
  // (a short write first, when the limit falls inside a call). -1: never.
  std::atomic<long> write_budget{-1};
  std::atomic<int> write_errno{ENOSPC};
  // The next this many pwrite calls fail with write_errno, writing nothing
  // (a full disk that frees up when the test says so).
  std::atomic<int> fail_writes{0};
  std::atomic<bool> fail_fdatasync{false};
  std::atomic<bool> fail_ftruncate{false};

  ssize_t pwrite(int fd, const void *buf, size_t n, off_t offset) override {
    ++writes;
    if (fail_writes > 0) {
      --fail_writes;
      errno = write_errno.load();
      return -1;
    }
    long budget = write_budget.load();
    if (budget >= 0) {
      if (budget == 0) {
        errno = write_errno.load();
        return -1;
      }
      if (static_cast<long>(n) > budget) n = static_cast<size_t>(budget);
      write_budget -= static_cast<long>(n);
    }
    return StorageIo::pwrite(fd, buf, n, offset);
  }
  int fdatasync(int fd) override {
    ++fdatasyncs;
    if (fail_fdatasync) {
      errno = EIO;
      return -1;
    }
    return StorageIo::fdatasync(fd);
  }
  int fsync(int fd) override {
    ++fsyncs;
    return StorageIo::fsync(fd);
  }
  int ftruncate(int fd, off_t length) override {
    if (fail_ftruncate) {
      errno = EIO;
      return -1;
    }
    return StorageIo::ftruncate(fd, length);
  }
};

inline std::string read_file(const std::string &path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline void write_file(const std::string &path, const std::string &data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
}

// Segment files of a log directory, sorted.
inline std::vector<std::string> segment_files(const std::string &dir) {
  std::vector<std::string> out;
  for (const auto &e : std::filesystem::directory_iterator(dir))
    if (e.path().extension() == ".seg") out.push_back(e.path().string());
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace ingestd::testing
