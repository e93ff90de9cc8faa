// A shared object that is not an ingestd plugin: no ingestd_plugin_v1.
#include "ingestd/plugin.h"

extern "C" INGESTD_EXPORT int something_else(void) {
  return 42;
}
