// IP / CIDR parsing and X-Forwarded-For resolution; see address.h.
#include "http/address.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstring>
#include <stdexcept>

#include "http/strings.h"

namespace ingestd::http::detail {

namespace {

// Strips "[v6]:port", "[v6]" and "v4:port" down to the bare address.
std::string_view strip_port(std::string_view s) {
  if (!s.empty() && s.front() == '[') {
    size_t end = s.find(']');
    if (end == std::string_view::npos) return {};
    return s.substr(1, end - 1);
  }
  size_t colon = s.find(':');
  if (colon != std::string_view::npos && s.find(':', colon + 1) == std::string_view::npos) {
    return s.substr(0, colon);  // exactly one colon: IPv4 with port
  }
  return s;
}

}  // namespace

std::optional<IpAddress> parse_ip(std::string_view text) {
  text = strip_port(trim(text));
  char buf[INET6_ADDRSTRLEN + 1];
  if (text.empty() || text.size() >= sizeof(buf)) return std::nullopt;
  std::memcpy(buf, text.data(), text.size());
  buf[text.size()] = '\0';
  IpAddress ip;
  if (inet_pton(AF_INET, buf, ip.bytes.data()) == 1) {
    ip.family = 4;
    return ip;
  }
  if (inet_pton(AF_INET6, buf, ip.bytes.data()) != 1) return std::nullopt;
  ip.family = 6;
  static constexpr uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(ip.bytes.data(), kMapped, sizeof(kMapped)) == 0) {
    std::memmove(ip.bytes.data(), ip.bytes.data() + 12, 4);
    std::memset(ip.bytes.data() + 4, 0, 12);
    ip.family = 4;
  }
  return ip;
}

bool Cidr::contains(const IpAddress &ip) const {
  if (ip.family != net.family) return false;
  int full = prefix / 8, rest = prefix % 8;
  if (std::memcmp(ip.bytes.data(), net.bytes.data(), full) != 0) return false;
  if (rest == 0) return true;
  auto mask = static_cast<uint8_t>(0xff << (8 - rest));
  return (ip.bytes[full] & mask) == (net.bytes[full] & mask);
}

std::optional<Cidr> parse_cidr(std::string_view text) {
  text = trim(text);
  size_t slash = text.find('/');
  auto ip = parse_ip(text.substr(0, slash));
  if (!ip) return std::nullopt;
  Cidr c{*ip, ip->family == 4 ? 32 : 128};
  if (slash != std::string_view::npos) {
    std::string_view p = text.substr(slash + 1);
    int prefix = -1;
    auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), prefix);
    if (ec != std::errc() || end != p.data() + p.size() || prefix < 0 || prefix > c.prefix) {
      return std::nullopt;
    }
    // "::ffff:10.0.0.0/104" is stored as IPv4: shift the prefix with it.
    if (ip->family == 4 && text.find(':') != std::string_view::npos) {
      if (prefix < 96) return std::nullopt;
      prefix -= 96;
    }
    c.prefix = prefix;
  }
  return c;
}

TrustedProxies::TrustedProxies(const std::vector<std::string> &cidrs) {
  for (const auto &s : cidrs) {
    auto c = parse_cidr(s);
    if (!c) throw std::invalid_argument("invalid trusted proxy address range: " + s);
    ranges_.push_back(*c);
  }
}

bool TrustedProxies::contains(const IpAddress &ip) const {
  for (const auto &r : ranges_) {
    if (r.contains(ip)) return true;
  }
  return false;
}

std::string_view TrustedProxies::client(const IpAddress &peer, std::string_view peer_text,
                                        const std::vector<std::string_view> &xff) const {
  if (xff.empty() || !contains(peer)) return peer_text;
  std::string_view best = peer_text;
  for (auto h = xff.rbegin(); h != xff.rend(); ++h) {
    std::string_view list = *h;
    while (!list.empty()) {
      size_t comma = list.rfind(',');
      std::string_view entry =
          trim(comma == std::string_view::npos ? list : list.substr(comma + 1));
      list = comma == std::string_view::npos ? std::string_view{} : list.substr(0, comma);
      if (entry.empty()) continue;
      auto ip = parse_ip(entry);
      if (!ip) return best;
      best = strip_port(entry);
      if (!contains(*ip)) return best;
    }
  }
  return best;
}

}  // namespace ingestd::http::detail
