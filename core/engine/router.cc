// Glob matching and route planning.
#include "engine/router.h"

namespace ingestd {

namespace {
// Matches one class at p (just after '['); returns the position after ']' or
// npos if the class is unterminated (then '[' is literal).
size_t match_class(std::string_view pat, size_t p, char c, bool *matched) {
  bool negate = false;
  if (p < pat.size() && (pat[p] == '!' || pat[p] == '^')) {
    negate = true;
    ++p;
  }
  bool hit = false;
  bool first = true;
  while (p < pat.size() && (first || pat[p] != ']')) {
    first = false;
    char lo = pat[p];
    if (lo == '\\' && p + 1 < pat.size()) lo = pat[++p];
    char hi = lo;
    if (p + 2 < pat.size() && pat[p + 1] == '-' && pat[p + 2] != ']') {
      hi = pat[p + 2];
      if (hi == '\\' && p + 3 < pat.size()) {
        hi = pat[p + 3];
        ++p;
      }
      p += 2;
    }
    if (c >= lo && c <= hi) hit = true;
    ++p;
  }
  if (p >= pat.size()) return std::string_view::npos;
  *matched = hit != negate;
  return p + 1;
}
}  // namespace

bool glob_match(std::string_view pat, std::string_view s) {
  size_t p = 0, i = 0;
  size_t star_p = std::string_view::npos, star_i = 0;
  while (i < s.size()) {
    if (p < pat.size()) {
      char pc = pat[p];
      if (pc == '*') {
        star_p = ++p;
        star_i = i;
        continue;
      }
      if (pc == '?') {
        ++p;
        ++i;
        continue;
      }
      if (pc == '[') {
        bool m = false;
        size_t next = match_class(pat, p + 1, s[i], &m);
        if (next != std::string_view::npos) {
          if (m) {
            p = next;
            ++i;
            continue;
          }
        } else if (s[i] == '[') {
          ++p;
          ++i;
          continue;
        }
      } else {
        if (pc == '\\' && p + 1 < pat.size()) pc = pat[p + 1];
        if (pc == s[i]) {
          p += (pat[p] == '\\' && p + 1 < pat.size()) ? 2 : 1;
          ++i;
          continue;
        }
      }
    }
    if (star_p == std::string_view::npos) return false;
    p = star_p;
    i = ++star_i;
  }
  while (p < pat.size() && pat[p] == '*')
    ++p;
  return p == pat.size();
}

std::vector<RouteTarget> plan_routes(const std::vector<RouteSpec> &routes, std::string_view tag) {
  std::vector<RouteTarget> out;
  for (size_t r = 0; r < routes.size(); ++r) {
    if (glob_match(routes[r].match, tag)) {
      out.push_back(RouteTarget{r, routes[r].filters, routes[r].outputs});
    }
  }
  return out;
}

}  // namespace ingestd
