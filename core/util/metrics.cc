// Metrics registry and Prometheus text rendering.
#include "util/metrics.h"

#include <cinttypes>
#include <cstdio>

namespace ingestd {

void Histogram::observe(double ms) {
  size_t i = 0;
  while (i < kBoundsMs.size() && ms > kBoundsMs[i])
    ++i;
  buckets_[i].add();
  count_.add();
  sum_.add(ms);
}

std::string render_labels(const Labels &labels) {
  std::string out;
  for (const auto &[k, v] : labels) {
    if (!out.empty()) out += ',';
    out += k;
    out += "=\"";
    for (char c : v) {
      if (c == '\\' || c == '"') out += '\\';
      if (c == '\n') {
        out += "\\n";
        continue;
      }
      out += c;
    }
    out += '"';
  }
  return out;
}

MetricsRegistry::Series *MetricsRegistry::find_or_add(std::string_view name, std::string_view help,
                                                      const Labels &labels, Type t) {
  std::lock_guard lock(mu_);
  auto it = families_.find(name);
  if (it == families_.end()) {
    it = families_.emplace(std::string(name), Family{t, std::string(help), {}}).first;
  }
  if (it->second.type != t) return nullptr;  // one name, one type
  Series &s = it->second.series[render_labels(labels)];
  switch (t) {
    case Type::Counter:
      if (!s.counter) s.counter = std::make_unique<Counter>();
      break;
    case Type::Gauge:
      if (!s.gauge) s.gauge = std::make_unique<Gauge>();
      break;
    case Type::Histogram:
      if (!s.histogram) s.histogram = std::make_unique<Histogram>();
      break;
  }
  return &s;
}

Counter *MetricsRegistry::counter(std::string_view name, std::string_view help,
                                  const Labels &labels) {
  Series *s = find_or_add(name, help, labels, Type::Counter);
  return s ? s->counter.get() : nullptr;
}

Gauge *MetricsRegistry::gauge(std::string_view name, std::string_view help, const Labels &labels) {
  Series *s = find_or_add(name, help, labels, Type::Gauge);
  return s ? s->gauge.get() : nullptr;
}

Histogram *MetricsRegistry::histogram(std::string_view name, std::string_view help,
                                      const Labels &labels) {
  Series *s = find_or_add(name, help, labels, Type::Histogram);
  return s ? s->histogram.get() : nullptr;
}

void MetricsRegistry::accumulate(std::map<std::string, Snapshot> *into, bool gauges) const {
  std::lock_guard lock(mu_);
  for (const auto &[name, fam] : families_) {
    if (!gauges && fam.type == Type::Gauge) continue;
    Snapshot &snap = (*into)[name];
    snap.type = fam.type;
    if (snap.help.empty()) snap.help = fam.help;
    for (const auto &[labels, s] : fam.series) {
      Snapshot::Values &v = snap.series[labels];
      if (s.counter) v.value += static_cast<double>(s.counter->value());
      if (s.gauge) v.value += s.gauge->value();
      if (s.histogram) {
        for (size_t i = 0; i < v.buckets.size(); ++i)
          v.buckets[i] += s.histogram->bucket(i);
        v.count += s.histogram->count();
        v.sum += s.histogram->sum();
      }
    }
  }
}

namespace {
void append_number(std::string *out, double v) {
  char buf[64];
  if (v == static_cast<double>(static_cast<int64_t>(v)) && v < 9e15 && v > -9e15) {
    std::snprintf(buf, sizeof buf, "%" PRId64, static_cast<int64_t>(v));
  } else {
    std::snprintf(buf, sizeof buf, "%.17g", v);
  }
  *out += buf;
}

void append_series(std::string *out, const std::string &name, const std::string &labels,
                   const std::string &extra, double v) {
  *out += name;
  if (!labels.empty() || !extra.empty()) {
    *out += '{';
    *out += labels;
    if (!labels.empty() && !extra.empty()) *out += ',';
    *out += extra;
    *out += '}';
  }
  *out += ' ';
  append_number(out, v);
  *out += '\n';
}
}  // namespace

std::string render_prometheus(const std::vector<const MetricsRegistry *> &registries,
                              const std::map<std::string, Snapshot> *base) {
  std::map<std::string, Snapshot> all;
  if (base) all = *base;
  for (const auto *r : registries)
    r->accumulate(&all);
  std::string out;
  out.reserve(4096);
  for (const auto &[name, snap] : all) {
    const char *type = snap.type == MetricsRegistry::Type::Counter ? "counter"
                       : snap.type == MetricsRegistry::Type::Gauge ? "gauge"
                                                                   : "histogram";
    out += "# HELP " + name + " " + snap.help + "\n";
    out += "# TYPE " + name + " " + type + "\n";
    for (const auto &[labels, v] : snap.series) {
      if (snap.type != MetricsRegistry::Type::Histogram) {
        append_series(&out, name, labels, "", v.value);
        continue;
      }
      uint64_t cumulative = 0;
      for (size_t i = 0; i < Histogram::kBoundsMs.size(); ++i) {
        cumulative += v.buckets[i];
        char le[48];
        std::snprintf(le, sizeof le, "le=\"%g\"", Histogram::kBoundsMs[i] / 1000.0);
        append_series(&out, name + "_bucket", labels, le, static_cast<double>(cumulative));
      }
      cumulative += v.buckets.back();
      append_series(&out, name + "_bucket", labels, "le=\"+Inf\"", static_cast<double>(cumulative));
      append_series(&out, name + "_sum", labels, "", v.sum / 1000.0);
      append_series(&out, name + "_count", labels, "", static_cast<double>(v.count));
    }
  }
  return out;
}

}  // namespace ingestd
