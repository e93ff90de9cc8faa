// Reading a plugin's validated options into C++ values: the one copy of the
// "unset or NULL reads as empty" rules, so each plugin reads its options
// once in on_init into a struct. Header-only, on the host API only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "ingestd/plugin.h"

namespace ingestd::common {

// A view of one instance's config; valid during on_init (the host owns cfg).
class Options {
 public:
  Options(const ingestd_host_t *host, const ingestd_config_t *cfg) : h_(host), cfg_(cfg) {}

  // Set in the config, or defaulted by the option table.
  bool has(const char *name) const { return h_->has_option(cfg_, name) != 0; }

  // The string value; "" when unset (no default) or NULL.
  std::string string(const char *name) const {
    const char *s = has(name) ? h_->option_string(cfg_, name) : nullptr;
    return s ? s : "";
  }
  // The string value; nullptr when unset, NULL or empty. Lives as long as cfg.
  const char *c_str(const char *name) const {
    const char *s = has(name) ? h_->option_string(cfg_, name) : nullptr;
    return (s && *s) ? s : nullptr;
  }

  bool flag(const char *name) const { return h_->option_bool(cfg_, name) != 0; }
  int64_t integer(const char *name) const { return h_->option_int(cfg_, name); }
  double number(const char *name) const { return h_->option_double(cfg_, name); }
  uint64_t size(const char *name) const { return h_->option_size(cfg_, name); }
  // DURATION options read as milliseconds; negative never passes validation.
  uint64_t duration_ms(const char *name) const {
    int64_t v = h_->option_int(cfg_, name);
    return v > 0 ? static_cast<uint64_t>(v) : 0;
  }

  // STRING_LIST: the items in order (a NULL item reads as "").
  std::vector<std::string> strings(const char *name) const {
    std::vector<std::string> out(h_->option_list_size(cfg_, name));
    for (size_t i = 0; i < out.size(); ++i) {
      const char *s = h_->option_list_item(cfg_, name, i);
      if (s) out[i] = s;
    }
    return out;
  }
  // STRING_LIST_LIST: each inner list in order.
  std::vector<std::vector<std::string>> string_lists(const char *name) const {
    std::vector<std::vector<std::string>> out(h_->option_list_size(cfg_, name));
    for (size_t i = 0; i < out.size(); ++i) {
      size_t n = h_->option_list_list_size(cfg_, name, i);
      for (size_t j = 0; j < n; ++j) {
        const char *s = h_->option_list_list_item(cfg_, name, i, j);
        out[i].emplace_back(s ? s : "");
      }
    }
    return out;
  }

  // The core's retry_initial / retry_max rows, as every network output
  // paces its own retries with them: initial at least 1 ms, max >= initial.
  uint64_t retry_initial_ms() const {
    int64_t v = h_->option_int(cfg_, "retry_initial");
    return v > 1 ? static_cast<uint64_t>(v) : 1;
  }
  uint64_t retry_max_ms() const {
    uint64_t initial = retry_initial_ms();
    int64_t v = h_->option_int(cfg_, "retry_max");
    return v > 0 && static_cast<uint64_t>(v) > initial ? static_cast<uint64_t>(v) : initial;
  }

 private:
  const ingestd_host_t *h_;
  const ingestd_config_t *cfg_;
};

}  // namespace ingestd::common
