// Metrics: per-worker registries of counters, gauges and histograms, summed
// across workers when /metrics is read. A metric is written only by its
// worker's thread (a relaxed load and store, no read-modify-write) and read by
// the admin thread, so the request path takes no lock and no contended atomic.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ingestd {

struct Snapshot;

using Labels = std::vector<std::pair<std::string, std::string>>;

class Counter {
 public:
  void add(uint64_t n = 1) {
    v_.store(v_.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
  }
  uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> v_{0};
};

class Gauge {
 public:
  void set(double v) { v_.store(v, std::memory_order_relaxed); }
  void add(double d) { set(value() + d); }
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

// Latency histogram with fixed bucket bounds in milliseconds.
class Histogram {
 public:
  static constexpr std::array<double, 14> kBoundsMs = {0.5, 1,   2.5, 5,    10,   25,   50,
                                                       100, 250, 500, 1000, 2500, 5000, 10000};
  void observe(double ms);
  uint64_t bucket(size_t i) const { return buckets_[i].value(); }  // non-cumulative
  uint64_t count() const { return count_.value(); }
  double sum() const { return sum_.value(); }

 private:
  std::array<Counter, kBoundsMs.size() + 1> buckets_;
  Counter count_;
  Gauge sum_;
};

class MetricsRegistry {
 public:
  // Returns the same object for the same name and labels. Pointers stay valid
  // for the registry's life. Registration locks; updates do not.
  Counter *counter(std::string_view name, std::string_view help, const Labels &labels = {});
  Gauge *gauge(std::string_view name, std::string_view help, const Labels &labels = {});
  Histogram *histogram(std::string_view name, std::string_view help, const Labels &labels = {});

  enum class Type { Counter, Gauge, Histogram };
  struct Series {
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  struct Family {
    Type type;
    std::string help;
    std::map<std::string, Series> series;  // key: rendered label set "a=\"b\",c=\"d\""
  };

  // Adds this registry's values into `into` (same layout, values summed).
  // Without gauges for a registry that is going away: its counters stay
  // monotonic, but its queue depths are no longer anyone's.
  void accumulate(std::map<std::string, Snapshot> *into, bool gauges = true) const;

 private:
  Series *find_or_add(std::string_view name, std::string_view help, const Labels &labels, Type t);
  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;
};

// Summed values of one family, for rendering.
struct Snapshot {
  MetricsRegistry::Type type = MetricsRegistry::Type::Counter;
  std::string help;
  struct Values {
    double value = 0;
    std::array<uint64_t, Histogram::kBoundsMs.size() + 1> buckets{};
    uint64_t count = 0;
    double sum = 0;
  };
  std::map<std::string, Values> series;
};

std::string render_labels(const Labels &labels);
// Prometheus text exposition format 0.0.4 of the sum of `registries`.
// `base` holds what retired workers counted, so counters survive reloads.
std::string render_prometheus(const std::vector<const MetricsRegistry *> &registries,
                              const std::map<std::string, Snapshot> *base = nullptr);

}  // namespace ingestd
