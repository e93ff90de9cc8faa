// filter_modify: rename, remove, set and add fields, and stamp the receive
// time. Applied in that order, so a renamed field can be removed or replaced
// and `add` fills only what is still missing. A rename whose target cannot
// be set (it crosses a non-object field) leaves the record as it was; it is
// counted in ingestd_modify_rename_failed_total and logged once per field.
#include <string>
#include <utility>
#include <vector>

#include "ingestd/plugin.h"

namespace {

struct ModifyFilter {
  const ingestd_host_t *host;
  ingestd_instance_t *inst;
  std::vector<std::pair<std::string, std::string>> rename, set, add;
  std::vector<bool> rename_warned;  // by rename entry: the first failure is logged
  ingestd_metric_t *rename_failed = nullptr;
  std::vector<std::string> remove;
  std::string received_at;
};

const ingestd_option_t kOptions[] = {
    {"rename", INGESTD_OPT_STRING_MAP, nullptr, 0, nullptr, 1, 0,
     "Fields to rename: { old = \"new\" } (dotted paths allowed); a record whose target "
     "crosses a non-object field keeps the old field, counted in "
     "ingestd_modify_rename_failed_total"},
    {"remove", INGESTD_OPT_STRING_LIST, nullptr, 0, nullptr, 1, 0,
     "Fields to remove: [\"debug\", \"a.b\"]"},
    {"set", INGESTD_OPT_STRING_MAP, nullptr, 0, nullptr, 1, 0,
     "Fields to set to a string, replacing what is there: { env = \"prod\" }"},
    {"add", INGESTD_OPT_STRING_MAP, nullptr, 0, nullptr, 1, 0,
     "Fields to set to a string only when the record lacks them"},
    {"received_at", INGESTD_OPT_STRING, nullptr, 0, nullptr, 1, 0,
     "Field that receives the request's arrival time in epoch milliseconds"},
};

std::vector<std::pair<std::string, std::string>> read_map(const ingestd_host_t *h,
                                                          const ingestd_config_t *cfg,
                                                          const char *name) {
  std::vector<std::pair<std::string, std::string>> out;
  size_t n = h->option_list_size(cfg, name);
  for (size_t i = 0; i < n; ++i) {
    out.emplace_back(h->option_map_key(cfg, name, i), h->option_list_item(cfg, name, i));
  }
  return out;
}

int on_init(const ingestd_host_t *host, ingestd_instance_t *inst, const ingestd_config_t *cfg,
            void **data) {
  auto *f = new ModifyFilter;
  f->host = host;
  f->inst = inst;
  f->rename = read_map(host, cfg, "rename");
  f->rename_warned.assign(f->rename.size(), false);
  f->set = read_map(host, cfg, "set");
  f->add = read_map(host, cfg, "add");
  size_t n = host->option_list_size(cfg, "remove");
  for (size_t i = 0; i < n; ++i)
    f->remove.emplace_back(host->option_list_item(cfg, "remove", i));
  if (host->has_option(cfg, "received_at"))
    f->received_at = host->option_string(cfg, "received_at");
  if (f->rename.empty() && f->set.empty() && f->add.empty() && f->remove.empty() &&
      f->received_at.empty()) {
    host->log(inst, INGESTD_LOG_ERROR,
              "nothing to do: set at least one of rename, remove, set, add, received_at");
    delete f;
    return -1;
  }
  if (!f->rename.empty())
    f->rename_failed =
        host->counter(inst, "modify_rename_failed_total",
                      "Renames not done because the target path crosses a non-object field");
  *data = f;
  return 0;
}

void on_destroy(void *data) {
  delete static_cast<ModifyFilter *>(data);
}

ingestd_filter_result_type on_filter(void *data, ingestd_record_t *rec) {
  auto *f = static_cast<ModifyFilter *>(data);
  const ingestd_host_t *h = f->host;
  for (size_t i = 0; i < f->rename.size(); ++i) {
    const auto &[from, to] = f->rename[i];
    if (h->record_rename(rec, from.c_str(), to.c_str()) >= 0) continue;
    h->metric_add(f->rename_failed, 1);  // the record is unchanged
    if (!f->rename_warned[i]) {
      f->rename_warned[i] = true;
      h->log(f->inst, INGESTD_LOG_WARN,
             "cannot rename '%s' to '%s': the target crosses a field that is not an object; "
             "such records keep '%s' (counted in ingestd_modify_rename_failed_total; logged "
             "once)",
             from.c_str(), to.c_str(), from.c_str());
    }
  }
  for (const auto &field : f->remove)
    h->record_remove(rec, field.c_str());
  for (const auto &[field, value] : f->set)
    h->record_set_string(rec, field.c_str(), value.data(), value.size());
  for (const auto &[field, value] : f->add) {
    if (!h->record_get(rec, field.c_str()))
      h->record_set_string(rec, field.c_str(), value.data(), value.size());
  }
  if (!f->received_at.empty())
    h->record_set_int(rec, f->received_at.c_str(), h->record_received_ms(rec));
  return INGESTD_FILTER_KEEP;
}

}  // namespace

extern "C" INGESTD_EXPORT const ingestd_plugin_t ingestd_plugin_v1 = {
    INGESTD_ABI_MAJOR,
    INGESTD_ABI_MINOR,
    sizeof(ingestd_plugin_t),
    "modify",
    INGESTD_KIND_FILTER,
    "Renames, removes, sets and adds fields; stamps the receive time",
    "1.0.0",
    kOptions,
    sizeof kOptions / sizeof kOptions[0],
    on_init,
    nullptr,
    nullptr,
    on_destroy,
    nullptr,
    on_filter,
    nullptr,
};
