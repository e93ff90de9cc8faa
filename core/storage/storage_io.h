// File-descriptor ownership and the few syscalls of the segment log that
// tests replace (to count fdatasync calls, or to fail a write with ENOSPC).
#pragma once

#include <sys/types.h>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>

namespace ingestd {

// Owns one file descriptor; closes it on destruction. Move-only.
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  UniqueFd(UniqueFd &&o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  UniqueFd &operator=(UniqueFd &&o) noexcept {
    if (this != &o) reset(std::exchange(o.fd_, -1));
    return *this;
  }
  UniqueFd(const UniqueFd &) = delete;
  UniqueFd &operator=(const UniqueFd &) = delete;
  ~UniqueFd() { reset(); }

  int get() const { return fd_; }
  bool valid() const { return fd_ >= 0; }
  int release() { return std::exchange(fd_, -1); }
  void reset(int fd = -1);

 private:
  int fd_ = -1;
};

// The syscalls of the write, sync and cursor paths, with their usual
// contract (return -1 and set errno on failure). The default implementation
// calls the kernel; tests derive from it. Methods may be called from the
// commit thread (CommitJob::run) and the loop thread at the same time, so an
// implementation must be thread-safe (the default is stateless).
class StorageIo {
 public:
  virtual ~StorageIo() = default;
  virtual ssize_t pwrite(int fd, const void *buf, size_t n, off_t offset);
  virtual int fdatasync(int fd);
  virtual int fsync(int fd);
  virtual int ftruncate(int fd, off_t length);

  // The kernel, shared by every log (it has no state).
  static StorageIo &system();
};

// "OP PATH: strerror(err)", the shape of every syscall error of this library.
std::string sys_error(std::string_view op, std::string_view path, int err);

// Writes all of [buf, buf+n) at `offset`, retrying EINTR and short writes.
// Returns 0 or an errno value (a write that makes no progress is EIO).
int pwrite_all(StorageIo &io, int fd, const char *buf, size_t n, off_t offset);

// Reads up to n bytes at `offset` (fewer only at end of file), retrying EINTR.
// Returns the byte count, or -errno.
ssize_t pread_all(int fd, char *buf, size_t n, off_t offset);

}  // namespace ingestd
