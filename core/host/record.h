// Records: one JSON object with its tag, shared by the outputs it is routed to.
// Reference counts are plain integers: a record never leaves its worker.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "ingestd/plugin.h"
#include "json/json.h"

namespace ingestd {

struct Record {
  json::Value root;
  std::string tag;
  int64_t received_ms = 0;
  uint32_t refs = 0;

  // The record as compact JSON, serialised once for every output that wants it.
  const std::string &json() {
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
  size_t size() {
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
  size_t memory() {
    if (memory_ == 0) {
      memory_ = sizeof(Record) + root.heap_bytes() + (size() + 1 > 16 ? size() + 17 : 0) +
                (tag.capacity() > 15 ? tag.capacity() + 17 : 0);
    }
    return memory_;
  }
  void modified() { json_valid_ = size_valid_ = false; }

  ingestd_record_t *abi() { return reinterpret_cast<ingestd_record_t *>(this); }
  static Record *from(ingestd_record_t *r) { return reinterpret_cast<Record *>(r); }
  static const Record *from(const ingestd_record_t *r) {
    return reinterpret_cast<const Record *>(r);
  }

 private:
  std::string json_;
  size_t size_ = 0;
  size_t memory_ = 0;
  bool json_valid_ = false;
  bool size_valid_ = false;
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
  // A copy this caller may modify without changing what others see.
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
