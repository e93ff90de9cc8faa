// libFuzzer target: parse arbitrary bytes as a body and as one value, and check that every value
// parsed serializes to text that parses back to the same serialization.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "json/json.h"

namespace {

void check_round_trip(const ingestd::json::Value &v) {
  std::string once = ingestd::json::to_string(v);
  // Queue accounting uses the size without serialising: it must be exact.
  if (ingestd::json::serialized_size(v) != once.size()) std::abort();
  ingestd::json::Value::Footprint f = v.footprint();
  if (f.serialized != once.size() || f.heap != v.heap_bytes()) std::abort();
  ingestd::json::Value again;
  ingestd::json::ParseError err;
  // Serialization never adds nesting, so the default depth limit still holds.
  if (!ingestd::json::parse(once, &again, &err)) std::abort();
  if (!(again == v)) std::abort();
  if (ingestd::json::to_string(again) != once) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string_view text(reinterpret_cast<const char *>(data), size);
  ingestd::json::BodyResult body = ingestd::json::parse_body(text);
  for (const auto &item : body.items) {
    if (item.error.empty() && !item.value.is_object()) std::abort();
    check_round_trip(item.value);
  }
  ingestd::json::Value v;
  ingestd::json::ParseError err;
  if (ingestd::json::parse(text, &v, &err)) {
    check_round_trip(v);
    // Copies are deep and equal.
    ingestd::json::Value copy = v;
    if (!(copy == v)) std::abort();
  } else if (err.offset > size || err.message.empty()) {
    std::abort();
  }
  return 0;
}
