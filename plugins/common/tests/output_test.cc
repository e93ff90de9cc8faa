// Unit tests for the output shape (common/output.h): the hooks reach the
// instance's start / stop / flush, and on_destroy runs its destructor.
#include "common/output.h"

#include <gtest/gtest.h>

#include <string>

namespace ingestd::common {
namespace {

struct Probe final : Instance {
  Probe(std::string *log) : Instance(nullptr, nullptr), log_(log) {}
  ~Probe() { *log_ += "destroy;"; }
  int start() {
    *log_ += "start;";
    return 7;
  }
  void stop() { *log_ += "stop;"; }
  void flush(ingestd_batch_t *b) { *log_ += b ? "flush;" : "flush(null);"; }
  std::string *log_;
};

TEST(OutputHooks, MapTheLifecycleToTheClass) {
  using H = OutputHooks<Probe>;
  std::string log;
  void *data = new Probe(&log);
  EXPECT_EQ(H::on_start(data), 7);
  H::on_flush(data, reinterpret_cast<ingestd_batch_t *>(&log));
  H::on_stop(data);
  H::on_destroy(data);
  EXPECT_EQ(log, "start;flush;stop;destroy;");
}

}  // namespace
}  // namespace ingestd::common
