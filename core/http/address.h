// IP addresses, CIDR ranges and the X-Forwarded-For walk for trusted proxies.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ingestd::http::detail {

struct IpAddress {
  int family = 0;  // 4 or 6; IPv4-mapped IPv6 (::ffff:a.b.c.d) is stored as 4
  std::array<uint8_t, 16> bytes{};
};

// "1.2.3.4", "::1", "[::1]", and with a port "1.2.3.4:80", "[::1]:80".
std::optional<IpAddress> parse_ip(std::string_view text);

struct Cidr {
  IpAddress net;
  int prefix = 0;
  bool contains(const IpAddress &ip) const;
};

// "10.0.0.0/8", "2001:db8::/32", or a bare address (/32, /128).
std::optional<Cidr> parse_cidr(std::string_view text);

class TrustedProxies {
 public:
  // Throws std::invalid_argument naming the first invalid entry.
  explicit TrustedProxies(const std::vector<std::string> &cidrs);
  TrustedProxies() = default;
  bool empty() const { return ranges_.empty(); }
  bool contains(const IpAddress &ip) const;

  // The client address of a request: `peer_text` unless the peer is trusted;
  // then X-Forwarded-For is walked right to left (headers in order, each a
  // comma list) and the first address that is not trusted wins. An entry that
  // is not an address stops the walk at the last good address. All trusted:
  // the leftmost. The result views `peer_text` or one of `xff`.
  std::string_view client(const IpAddress &peer, std::string_view peer_text,
                          const std::vector<std::string_view> &xff) const;

 private:
  std::vector<Cidr> ranges_;
};

}  // namespace ingestd::http::detail
