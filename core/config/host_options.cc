// The option_* functions of ingestd_host_t: typed reads of a plugin
// instance's validated options (an OptionValues behind ingestd_config_t).
#include "config/config.h"

#include <initializer_list>

namespace ingestd::config {

namespace {

// The value of `name` when it is set and of one of the given types.
const OptionValue *lookup(const ingestd_config_t *cfg, const char *name,
                          std::initializer_list<ingestd_option_kind_type> types) {
  if (cfg == nullptr || name == nullptr) return nullptr;
  const OptionValue *v = OptionValues::from_abi(cfg)->find(name);
  if (v == nullptr || !v->has_value) return nullptr;
  for (ingestd_option_kind_type t : types) {
    if (v->row.type == t) return v;
  }
  return nullptr;
}

}  // namespace

int has_option(const ingestd_config_t *cfg, const char *name) noexcept {
  if (cfg == nullptr || name == nullptr) return 0;
  return OptionValues::from_abi(cfg)->has(name) ? 1 : 0;
}

const char *option_string(const ingestd_config_t *cfg, const char *name) noexcept {
  const OptionValue *v = lookup(cfg, name, {INGESTD_OPT_STRING, INGESTD_OPT_ENUM});
  return v ? v->str.c_str() : nullptr;
}

int64_t option_int(const ingestd_config_t *cfg, const char *name) noexcept {
  const OptionValue *v = lookup(cfg, name, {INGESTD_OPT_INT, INGESTD_OPT_DURATION});
  return v ? v->i : 0;
}

uint64_t option_size(const ingestd_config_t *cfg, const char *name) noexcept {
  const OptionValue *v = lookup(cfg, name, {INGESTD_OPT_SIZE});
  return v ? v->size : 0;
}

double option_double(const ingestd_config_t *cfg, const char *name) noexcept {
  const OptionValue *v = lookup(cfg, name, {INGESTD_OPT_DOUBLE});
  return v ? v->d : 0;
}

int option_bool(const ingestd_config_t *cfg, const char *name) noexcept {
  const OptionValue *v = lookup(cfg, name, {INGESTD_OPT_BOOL});
  return v && v->b ? 1 : 0;
}

size_t option_list_size(const ingestd_config_t *cfg, const char *name) noexcept {
  const OptionValue *v = lookup(
      cfg, name, {INGESTD_OPT_STRING_LIST, INGESTD_OPT_STRING_LIST_LIST, INGESTD_OPT_STRING_MAP});
  if (v == nullptr) return 0;
  switch (v->row.type) {
    case INGESTD_OPT_STRING_LIST:
      return v->list.size();
    case INGESTD_OPT_STRING_LIST_LIST:
      return v->list_list.size();
    default:
      return v->map.size();
  }
}

const char *option_list_item(const ingestd_config_t *cfg, const char *name, size_t i) noexcept {
  const OptionValue *v = lookup(cfg, name, {INGESTD_OPT_STRING_LIST, INGESTD_OPT_STRING_MAP});
  if (v == nullptr) return nullptr;
  if (v->row.type == INGESTD_OPT_STRING_LIST) {
    return i < v->list.size() ? v->list[i].c_str() : nullptr;
  }
  return i < v->map.size() ? v->map[i].second.c_str() : nullptr;
}

size_t option_list_list_size(const ingestd_config_t *cfg, const char *name, size_t i) noexcept {
  const OptionValue *v = lookup(cfg, name, {INGESTD_OPT_STRING_LIST_LIST});
  return v && i < v->list_list.size() ? v->list_list[i].size() : 0;
}

const char *option_list_list_item(const ingestd_config_t *cfg, const char *name, size_t i,
                                  size_t j) noexcept {
  const OptionValue *v = lookup(cfg, name, {INGESTD_OPT_STRING_LIST_LIST});
  if (v == nullptr || i >= v->list_list.size() || j >= v->list_list[i].size()) return nullptr;
  return v->list_list[i][j].c_str();
}

const char *option_map_key(const ingestd_config_t *cfg, const char *name, size_t i) noexcept {
  const OptionValue *v = lookup(cfg, name, {INGESTD_OPT_STRING_MAP});
  return v && i < v->map.size() ? v->map[i].first.c_str() : nullptr;
}

}  // namespace ingestd::config
