// Records: one JSON object with its tag, shared by the outputs it is routed to.
// Reference counts are plain integers: a record never leaves its worker.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "ingestd/plugin.h"
#include "json/json.h"

namespace ingestd {

struct Instance;

struct Record {
  json::Value root;
  std::string tag;
  int64_t received_ms = 0;
  uint32_t refs = 0;
  bool plugin_copy = false;  // made by record_copy: the plugin frees it (record_free)

  // The record as compact JSON, serialised once for every output that wants it.
  // Logically const: the text is a cache of `root`.
  const std::string &json() const {
    if (!json_valid_) {
      json_.clear();
      if (size_valid_) json_.reserve(size_);  // one exact allocation, not growth
      json::serialize(root, &json_);
      json_valid_ = true;
    }
    return json_;
  }
  // The size of json(), without serialising when nobody asked for the text
  // yet (queue accounting; outputs like redis never need the text).
  size_t size() const {
    if (json_valid_) return json_.size();
    if (!size_valid_) {
      size_ = json::serialized_size(root);
      size_valid_ = true;
    }
    return size_;
  }
  // What holding the record in a queue costs: the record, its parsed form and
  // its JSON text (counted whether or not an output asked for it yet, so the
  // figure does not change while the record is queued). Computed once, when
  // it is first queued; filters have run by then.
  size_t memory() const {
    if (memory_ == 0) {
      size_t heap = 0;
      if (json_valid_ || size_valid_) {
        heap = root.heap_bytes();
      } else {
        json::Value::Footprint f = root.footprint();
        heap = f.heap;
        size_ = f.serialized;
        size_valid_ = true;
      }
      memory_ = sizeof(Record) + heap + (size() + 1 > 16 ? size() + 17 : 0) +
                (tag.capacity() > 15 ? tag.capacity() + 17 : 0);
    }
    return memory_;
  }
  void modified() { json_valid_ = size_valid_ = false; }

  // Read-only to plugins once an output was handed it (batch_record): outputs
  // of a fan-out share one record, so a change by one would leak into what
  // the others send. The host's setters refuse a read-only record.
  // `by` is the output last handed it, through which a refused setter is
  // logged (it lives as long as the batches that hold the record).
  bool read_only() const { return read_only_; }
  Instance *read_only_by() const { return read_only_by_; }
  void set_read_only(Instance *by) {
    read_only_ = true;
    read_only_by_ = by;
  }

  ingestd_record_t *abi() { return reinterpret_cast<ingestd_record_t *>(this); }
  static Record *from(ingestd_record_t *r) { return reinterpret_cast<Record *>(r); }
  static const Record *from(const ingestd_record_t *r) {
    return reinterpret_cast<const Record *>(r);
  }

 private:
  mutable std::string json_;
  mutable size_t size_ = 0;
  mutable size_t memory_ = 0;
  mutable bool json_valid_ = false;
  mutable bool size_valid_ = false;
  bool read_only_ = false;
  Instance *read_only_by_ = nullptr;
};

class RecordPtr {
 public:
  RecordPtr() = default;
  explicit RecordPtr(Record *r) : r_(r) {
    if (r_) ++r_->refs;
  }
  RecordPtr(const RecordPtr &o) : RecordPtr(o.r_) {}
  RecordPtr(RecordPtr &&o) noexcept : r_(std::exchange(o.r_, nullptr)) {}
  RecordPtr &operator=(RecordPtr o) noexcept {
    std::swap(r_, o.r_);
    return *this;
  }
  ~RecordPtr() {
    if (r_ && --r_->refs == 0) delete r_;
  }
  static RecordPtr make() { return RecordPtr(new Record); }
  Record *get() const { return r_; }
  Record *operator->() const { return r_; }
  Record &operator*() const { return *r_; }
  explicit operator bool() const { return r_ != nullptr; }
  // A copy this caller may modify without changing what others see (never
  // read-only, whatever the original is).
  RecordPtr clone() const {
    RecordPtr c = make();
    c->root = r_->root;
    c->tag = r_->tag;
    c->received_ms = r_->received_ms;
    return c;
  }

 private:
  Record *r_ = nullptr;
};

}  // namespace ingestd
