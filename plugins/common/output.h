// The one shape of an output plugin instance: a class constructed by the
// plugin's on_init (after it read its options), whose start(), stop(),
// flush() and destructor are the on_start, on_stop, on_flush and on_destroy
// hooks. Header-only, on the host API only.
#pragma once

#include "ingestd/plugin.h"

namespace ingestd::common {

// The host and instance handles every output keeps. The host owns the
// instance through a void *: never copied.
struct Instance {
  Instance(const ingestd_host_t *h, ingestd_instance_t *i) : host(h), inst(i) {}
  Instance(const Instance &) = delete;
  Instance &operator=(const Instance &) = delete;

  const ingestd_host_t *const host;
  ingestd_instance_t *const inst;
};

// The hooks for the descriptor, from T's start() / stop() / flush() / delete.
template <class T>
struct OutputHooks {
  static int on_start(void *data) { return static_cast<T *>(data)->start(); }
  static void on_stop(void *data) { static_cast<T *>(data)->stop(); }
  static void on_destroy(void *data) { delete static_cast<T *>(data); }
  static void on_flush(void *data, ingestd_batch_t *batch) { static_cast<T *>(data)->flush(batch); }
};

}  // namespace ingestd::common
