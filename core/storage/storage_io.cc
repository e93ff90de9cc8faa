// UniqueFd, the real syscalls behind StorageIo, and I/O helpers.
#include "storage/storage_io.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace ingestd {

void UniqueFd::reset(int fd) {
  if (fd_ >= 0) ::close(fd_);  // close(2) errors are not actionable here: data was synced or not
  fd_ = fd;
}

ssize_t StorageIo::pwrite(int fd, const void *buf, size_t n, off_t offset) {
  return ::pwrite(fd, buf, n, offset);
}
int StorageIo::fdatasync(int fd) {
  return ::fdatasync(fd);
}
int StorageIo::fsync(int fd) {
  return ::fsync(fd);
}
int StorageIo::ftruncate(int fd, off_t length) {
  return ::ftruncate(fd, length);
}

StorageIo &StorageIo::system() {
  static StorageIo io;  // stateless
  return io;
}

std::string sys_error(std::string_view op, std::string_view path, int err) {
  std::string s(op);
  s += ' ';
  s += path;
  s += ": ";
  s += std::strerror(err);
  return s;
}

int pwrite_all(StorageIo &io, int fd, const char *buf, size_t n, off_t offset) {
  while (n > 0) {
    const ssize_t w = io.pwrite(fd, buf, n, offset);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    if (w == 0) return EIO;
    buf += w;
    n -= static_cast<size_t>(w);
    offset += w;
  }
  return 0;
}

ssize_t pread_all(int fd, char *buf, size_t n, off_t offset) {
  size_t done = 0;
  while (done < n) {
    const ssize_t r = ::pread(fd, buf + done, n - done, offset + static_cast<off_t>(done));
    if (r < 0) {
      if (errno == EINTR) continue;
      return -errno;
    }
    if (r == 0) break;
    done += static_cast<size_t>(r);
  }
  return static_cast<ssize_t>(done);
}

}  // namespace ingestd
