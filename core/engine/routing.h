// Routing on one worker: an input's accepted records along the routes its tag
// takes (engine/router.h plans them once per config): each route's filters
// once, on its own copy, then all-or-nothing admission into every target
// queue — memory queues directly, disk outputs through the input's log.
#pragma once

#include <uv.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "host/instance.h"
#include "http/server.h"
#include "util/log.h"
#include "util/metrics.h"

namespace ingestd {

class DiskLog;
class OutputRuntime;

struct FilterRuntime {
  Instance inst;
  Counter *dropped = nullptr;
};
using FilterChain = std::vector<FilterRuntime *>;

// Runs a filter chain on r; false when a filter dropped it.
bool run_filters(const FilterChain &chain, RecordPtr &r);

// An input's instance and where its records go.
struct InputRuntime {
  Instance inst;
  std::string tag;
  // One per route the tag takes, with the route's memory-buffered outputs.
  struct Target {
    Counter *records = nullptr;  // ingestd_route_records_total of the route
    FilterChain filters;
    std::vector<OutputRuntime *> outputs;
  };
  std::vector<Target> targets;
  // Disk outputs this input reaches, each with the filter chains of the
  // routes that lead there. The log holds records as the input accepted
  // them; the chains run when the output reads it, so once per route.
  struct DiskRoute {
    OutputRuntime *output = nullptr;
    std::vector<FilterChain> chains;
  };
  std::vector<DiskRoute> disk_routes;
  DiskLog *log = nullptr;  // this worker's log of the input (when disk_routes is not empty)

  Counter *records_in = nullptr;        // accepted: queued or written to the log
  Counter *records_rejected = nullptr;  // invalid, answered in the rejected list
  Counter *records_unrouted = nullptr;  // valid but matched no route
  Counter *records_refused = nullptr;   // valid but refused with 503 (queue full)
  Counter *requests_shed = nullptr;     // 503 before parsing: a queue was already full
  // The last request refused for room (records, memory), until one fits
  // again: until then room_for asks for that much room, so that overload is
  // shed before parsing rather than after it. 0 for a request no queue could
  // ever hold.
  size_t refused_records = 0, refused_memory = 0;
  bool warned_unrouted = false;

  bool routed() const { return !targets.empty(); }
};

// The answer to a request, held while its records are written to disk.
struct Reply {
  http::Responder responder;
  http::Response response;
};

class Routing {
 public:
  enum class Result {
    Ok,        // queued (or unrouted); answer now
    Pending,   // written to a disk log: the commit answers (the reply was taken)
    Full,      // a memory queue or max_memory is full: 503
    DiskFull,  // an output's max_disk is reached, or its log cannot be written: 503
  };

  // `outputs`: every output of the worker (for the shared max_memory).
  Routing(uv_loop_t *loop, const Logger *log, size_t max_memory,
          std::vector<OutputRuntime *> outputs)
      : loop_(loop), log_(log), max_memory_(max_memory), outputs_(std::move(outputs)) {}

  // Routes accepted records of `input`: all of them or none are kept.
  // Counters move only for what was kept.
  Result deliver(InputRuntime &input, std::vector<RecordPtr> &records, Reply *reply);
  // False when a queue of the input's routes is already full, or has less
  // room than the input's last refused request needed (checked before
  // parsing).
  bool room_for(const InputRuntime &input) const;

 private:
  bool admit_memory();
  void warn_unrouted(InputRuntime &input);
  Result write_disk(InputRuntime &input, std::vector<RecordPtr> &records, Reply *reply);

  uv_loop_t *loop_;
  const Logger *log_;
  size_t max_memory_;
  std::vector<OutputRuntime *> outputs_;
  // Scratch, reused across requests.
  std::vector<std::pair<OutputRuntime *, RecordPtr>> deliveries_;
  std::vector<uint64_t> per_target_;
  struct Tally {
    OutputRuntime *output;
    size_t records, memory;
  };
  std::vector<Tally> tallies_;
  std::vector<std::string> disk_payloads_;
};

}  // namespace ingestd
