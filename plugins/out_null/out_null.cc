// out_null: counts records and discards them. For benchmarks and for routes
// that only need metrics.
#include "ingestd/plugin.h"

namespace {

struct NullOutput {
  const ingestd_host_t *host;
  ingestd_metric_t *discarded;
};

int on_init(const ingestd_host_t *host, ingestd_instance_t *inst, const ingestd_config_t *,
            void **data) {
  auto *o = new NullOutput{host, nullptr};
  o->discarded =
      host->counter(inst, "null_discarded_records_total", "Records the null output discarded");
  *data = o;
  return 0;
}

void on_destroy(void *data) {
  delete static_cast<NullOutput *>(data);
}

void on_flush(void *data, ingestd_batch_t *batch) {
  auto *o = static_cast<NullOutput *>(data);
  o->host->metric_add(o->discarded, static_cast<double>(o->host->batch_size(batch)));
  o->host->batch_done(batch, INGESTD_BATCH_OK);
}

}  // namespace

extern "C" INGESTD_EXPORT const ingestd_plugin_t ingestd_plugin_v1 = {
    INGESTD_ABI_MAJOR,
    INGESTD_ABI_MINOR,
    sizeof(ingestd_plugin_t),
    "null",
    INGESTD_KIND_OUTPUT,
    "Counts records and discards them",
    "1.0.0",
    nullptr,
    0,
    on_init,
    nullptr,
    nullptr,
    on_destroy,
    nullptr,
    nullptr,
    on_flush,
};
