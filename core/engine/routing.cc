// Records from an input to the output queues: filters once per route,
// all-or-nothing admission, the disk log for disk-buffered outputs.
#include "engine/routing.h"

#include <algorithm>

#include "engine/disk_buffer.h"
#include "engine/output_runtime.h"

namespace ingestd {

bool run_filters(const FilterChain &chain, RecordPtr &r) {
  for (FilterRuntime *f : chain) {
    if (f->inst.plugin->on_filter(f->inst.data, r->abi()) == INGESTD_FILTER_DROP) {
      f->dropped->add();
      return false;
    }
  }
  return true;
}

void Routing::warn_unrouted(InputRuntime &input) {
  if (input.warned_unrouted) return;
  input.warned_unrouted = true;
  log_->logf(LogLevel::Warn, input.inst.scope,
             "records tagged '%s' match no route; they are answered as \"unrouted\", counted in "
             "ingestd_records_unrouted_total and not kept (logged once)",
             input.tag.c_str());
}

Routing::Result Routing::deliver(InputRuntime &input, std::vector<RecordPtr> &records,
                                 Reply *reply) {
  if (records.empty()) return Result::Ok;
  if (!input.routed()) {
    input.records_in->add(records.size());
    input.records_unrouted->add(records.size());
    warn_unrouted(input);
    return Result::Ok;
  }
  deliveries_.clear();
  per_target_.assign(input.targets.size(), 0);
  // A route's filters change the record they get, so a filtered route gets
  // its own copy unless it is the record's last user and nobody else holds
  // it: no unfiltered route before it, no disk log (which keeps the record
  // as the input accepted it).
  size_t last_user = 0;
  for (size_t t = 0; t < input.targets.size(); ++t)
    if (!input.targets[t].outputs.empty()) last_user = t;
  for (auto &rec : records) {
    bool shared = input.log != nullptr;  // the record as accepted is needed after the filters
    for (size_t t = 0; t < input.targets.size(); ++t) {
      const InputRuntime::Target &target = input.targets[t];
      if (target.outputs.empty()) {
        per_target_[t] += 1;  // only disk outputs: filtered when they read the log
        continue;
      }
      RecordPtr r = rec;
      if (target.filters.empty()) {
        shared = true;
      } else {
        if (t != last_user || shared) r = rec.clone();
        if (!run_filters(target.filters, r)) continue;
      }
      per_target_[t] += 1;
      for (OutputRuntime *o : target.outputs)
        deliveries_.emplace_back(o, r);
    }
  }
  if (!admit_memory()) {
    // Remembered only when it can fit once the queues drain: a request
    // larger than a queue is simply refused, and sheds nothing after it.
    size_t need_records = 0, need_memory = 0;
    bool fits_some_day = true;
    for (const Tally &t : tallies_) {
      need_records = std::max(need_records, t.records);
      need_memory = std::max(need_memory, t.memory);
      fits_some_day = fits_some_day && t.output->could_ever_accept(t.records, t.memory);
    }
    fits_some_day = fits_some_day && need_memory <= max_memory_;
    input.refused_records = fits_some_day ? need_records : 0;
    input.refused_memory = fits_some_day ? need_memory : 0;
    deliveries_.clear();
    input.records_refused->add(records.size());
    return Result::Full;
  }
  input.refused_records = input.refused_memory = 0;
  if (input.log) return write_disk(input, records, reply);
  for (size_t t = 0; t < input.targets.size(); ++t)
    input.targets[t].records->add(per_target_[t]);
  input.records_in->add(records.size());
  push_all(deliveries_, uv_now(loop_));
  return Result::Ok;
}

bool Routing::admit_memory() {
  tallies_.clear();
  size_t adding = 0;
  for (const auto &[o, r] : deliveries_) {
    size_t m = r->memory();
    adding += m;
    auto it = std::find_if(tallies_.begin(), tallies_.end(),
                           [o = o](const Tally &t) { return t.output == o; });
    if (it == tallies_.end()) {
      tallies_.push_back({o, 1, m});
    } else {
      it->records += 1;
      it->memory += m;
    }
  }
  size_t held = 0;
  for (const OutputRuntime *o : outputs_)
    held += o->memory();
  if (held + adding > max_memory_) return false;
  for (const Tally &t : tallies_)
    if (!t.output->can_accept(t.records, t.memory)) return false;
  return true;
}

Routing::Result Routing::write_disk(InputRuntime &input, std::vector<RecordPtr> &records,
                                    Reply *reply) {
  disk_payloads_.clear();
  uint64_t disk_adding = 0;
  for (auto &rec : records) {
    disk_payloads_.push_back(encode_disk_record(rec->received_ms, rec->json()));
    disk_adding += disk_payloads_.back().size() + 32;  // + frame header
  }
  bool refuse = input.log->segments().broken();
  for (const auto &dr : input.disk_routes) {
    OutputRuntime &out = *dr.output;
    uint64_t used = out.disk_bytes();
    if (used + disk_adding > out.max_disk()) {
      out.note_disk_full(used);
      refuse = true;
    } else {
      out.note_disk_room();
    }
  }
  if (refuse) {
    deliveries_.clear();
    input.records_refused->add(records.size());
    return Result::DiskFull;
  }
  CommitWaiter w;
  for (const auto &p : disk_payloads_)
    w.seq = input.log->append(p);  // bodies are far below the 256 MiB frame limit
  w.memory = std::move(deliveries_);
  deliveries_.clear();
  for (size_t t = 0; t < input.targets.size(); ++t)
    if (per_target_[t]) w.counts.emplace_back(input.targets[t].records, per_target_[t]);
  w.counts.emplace_back(input.records_in, records.size());
  if (reply) {
    w.has_responder = true;
    w.responder = std::move(reply->responder);
    w.response = std::move(reply->response);
  }
  input.log->wait(std::move(w));
  return Result::Pending;
}

bool Routing::room_for(const InputRuntime &input) const {
  size_t held = 0;
  for (const OutputRuntime *o : outputs_)
    held += o->memory();
  if (held >= max_memory_ || input.refused_memory > max_memory_ - held) return false;
  size_t records = std::max<size_t>(1, input.refused_records);
  for (const auto &t : input.targets) {
    for (const OutputRuntime *o : t.outputs)
      if (!o->can_accept(records, input.refused_memory)) return false;
  }
  for (const auto &dr : input.disk_routes)
    if (dr.output->disk_bytes() >= dr.output->max_disk()) return false;
  return true;
}

}  // namespace ingestd
