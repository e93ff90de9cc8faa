// Listening sockets: address parsing, SO_REUSEPORT binding.
#include "engine/listen_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <cstring>

namespace ingestd {

bool split_host_port(const std::string &address, std::string *host, int *port) {
  std::string h, p;
  if (!address.empty() && address[0] == '[') {
    auto close = address.find(']');
    if (close == std::string::npos || close + 1 >= address.size() || address[close + 1] != ':')
      return false;
    h = address.substr(1, close - 1);
    p = address.substr(close + 2);
  } else {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) return false;
    h = address.substr(0, colon);
    p = address.substr(colon + 1);
  }
  int v = -1;
  auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
  if (ec != std::errc() || ptr != p.data() + p.size() || v < 0 || v > 65535 || h.empty())
    return false;
  if (h == "localhost") h = "127.0.0.1";
  *host = h;
  *port = v;
  return true;
}

int open_listen_socket(const std::string &host, int *port, bool first, std::string *why) {
  sockaddr_storage ss{};
  socklen_t len;
  int family;
  auto *v4 = reinterpret_cast<sockaddr_in *>(&ss);
  auto *v6 = reinterpret_cast<sockaddr_in6 *>(&ss);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    family = AF_INET;
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(*port));
    len = sizeof *v4;
  } else if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    family = AF_INET6;
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(*port));
    len = sizeof *v6;
  } else {
    *why = "'" + host + "' is not an IP address";
    return -1;
  }
  if (first && *port != 0) {
    // SO_REUSEPORT would let another process of this user share the port
    // silently; a plain bind first reports "address in use" as nginx would.
    int probe = ::socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    ::setsockopt(probe, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (family == AF_INET6) ::setsockopt(probe, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
    if (probe >= 0 && ::bind(probe, reinterpret_cast<sockaddr *>(&ss), len) != 0) {
      *why = std::string("bind: ") + std::strerror(errno);
      ::close(probe);
      return -1;
    }
    if (probe >= 0) ::close(probe);
  }
  int fd = ::socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    *why = std::string("socket: ") + std::strerror(errno);
    return -1;
  }
  int one = 1;
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  ::setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (family == AF_INET6) ::setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
  if (::bind(fd, reinterpret_cast<sockaddr *>(&ss), len) != 0) {
    *why = std::string("bind: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  if (::listen(fd, 4096) != 0) {
    *why = std::string("listen: ") + std::strerror(errno);
    ::close(fd);
    return -1;
  }
  sockaddr_storage bound{};
  socklen_t blen = sizeof bound;
  ::getsockname(fd, reinterpret_cast<sockaddr *>(&bound), &blen);
  *port = family == AF_INET ? ntohs(reinterpret_cast<sockaddr_in *>(&bound)->sin_port)
                            : ntohs(reinterpret_cast<sockaddr_in6 *>(&bound)->sin6_port);
  return fd;
}

}  // namespace ingestd
