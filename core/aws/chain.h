// The AWS credentials chain of one worker, in the AWS SDK order: explicit
// keys, environment, web identity (STS), container credentials, shared
// credentials/config files, EC2 instance metadata (IMDSv2). Network sources
// go through the worker's async HttpClient; nothing blocks the loop but the
// read of small local files (token file, ~/.aws/*), done only when resolving.
//
// Resolution starts on the first request that needs credentials and those
// requests wait (inside the HTTP client) until it ends: with credentials, or
// with "credentials: no source in the chain had credentials (tried: ...)".
// Temporary credentials are refreshed from the same source in the background
// before they expire; a failed refresh keeps the old ones until they expire
// and retries with backoff.
//
// A chain with a role_arn has one source, AssumeRole: it takes credentials
// from a base chain (the same config without the role, shared with other
// users of it), signs an STS AssumeRole call with them and hands out the
// temporary credentials STS answers, refreshed at 5 minutes or half their
// lifetime before expiry, whichever is later. A failed AssumeRole (STS's
// code and message logged) is retried with capped backoff with jitter: until
// the next attempt is due, requests fail at once with the same error.
#pragma once

#include <cstdint>
#include <functional>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/credentials.h"
#include "aws/sigv4.h"
#include "common/backoff.h"
#include "httpclient/http_client.h"
#include "ingestd/plugin.h"
#include "util/log.h"
#include "util/metrics.h"
#include "util/uv_handle.h"

namespace ingestd::aws {

// ingestd_aws_config_t with its strings copied (empty: not set).
struct ChainConfig {
  std::string access_key_id, secret_access_key, session_token, profile, region, sts_endpoint,
      imds_endpoint, container_endpoint;
  // AssumeRole (ABI 1.2 fields; empty role_arn: none).
  std::string role_arn, external_id, role_session_name;
  uint32_t role_duration_s = 0;
  // Reads only the fields c.struct_size covers (0: the ABI 1.0 size).
  static ChainConfig from_abi(const ingestd_aws_config_t &c);
  std::string key() const;  // identical configs share one chain
  bool assumes_role() const { return !role_arn.empty(); }
  ChainConfig base() const;  // this config without the role: where its base credentials come from
};

struct ChainOptions {
  RefreshPolicy refresh;
  // Credentials count as expired this long before their Expiration.
  int64_t expiry_skew_ms = 10 * 1000;
  uint64_t retry_initial_ms = 1000;  // refresh retry backoff
  uint64_t retry_max_ms = 60 * 1000;
  uint64_t metadata_timeout_ms = 2000;  // IMDS and container endpoints (link-local)
  uint64_t sts_timeout_ms = 10000;
  // After every source failed, further requests fail at once for this long
  // instead of running the chain again.
  uint64_t failure_cooldown_ms = 1000;
  std::function<int64_t()> wall_ms;  // epoch ms; default: the system clock
  // Environment lookup; default: getenv. Tests inject their own.
  std::function<std::optional<std::string>(const char *)> getenv;
};

class Chain {
 public:
  enum class Source {
    Explicit,
    Environment,
    WebIdentity,
    Container,
    Profile,
    Imds,
    AssumeRole,
    None
  };
  static const char *source_name(Source s);

  // `http` must outlive the chain. With cfg.role_arn, `base` gives the base
  // credentials and must outlive the chain; null: the chain makes its own.
  Chain(ChainConfig cfg, HttpClient *http, const Logger *log, MetricsRegistry *metrics,
        ChainOptions opts, Chain *base = nullptr);
  ~Chain();  // fails waiting requests, cancels its own HTTP calls
  Chain(const Chain &) = delete;
  Chain &operator=(const Chain &) = delete;

  // Valid credentials, or an error. `ready` runs exactly once: at once when
  // credentials are at hand (then 0 is returned), else later with a ticket
  // for cancel(). `region_hint` picks the STS region when the config has none.
  using Ready = std::function<void(const Credentials *creds, const std::string &error)>;
  uint64_t acquire(std::string_view region_hint, Ready ready);
  void cancel(uint64_t ticket);  // `ready` will not run

  // An HttpRequest::prepare step that signs the request for service/region.
  std::function<std::function<void()>(HttpRequest &, HttpRequest::Ready)> signer(
      std::string service, std::string region);

  // Where the current credentials came from, or null while there are none:
  // a source name, or "assumed role ARN via SOURCE" (valid until the next
  // resolution).
  const char *source() const;
  const Credentials *current() const { return current_ ? &*current_ : nullptr; }
  const ChainConfig &config() const { return cfg_; }
  uint64_t refreshes() const { return refreshes_; }
  Chain *base() const { return base_; }  // null without a role

  ingestd_aws_t *abi() { return reinterpret_cast<ingestd_aws_t *>(this); }
  static Chain *from(ingestd_aws_t *a) { return reinterpret_cast<Chain *>(a); }

 private:
  using Done = std::function<void(std::optional<Credentials>, std::string why)>;
  struct Waiter {
    uint64_t ticket;
    Ready ready;
  };

  int64_t now() const;
  std::optional<std::string> env(const char *name) const;
  bool usable() const;
  void resolve(size_t index);
  void on_resolved(Source s, Credentials c);
  void on_all_failed();
  void on_failed(std::string error);
  void refresh();
  void schedule_refresh();
  void flush_waiters(const Credentials *c, const std::string &error);
  std::string region() const;

  // Sources: call `done` exactly once (maybe at once). `why` says why not.
  // A source that is not configured answers nullopt with "not set" reasons.
  void fetch(Source s, Done done);
  void fetch_web_identity(Done done);
  void fetch_container(Done done);
  void fetch_profile(Done done);
  void fetch_imds(Done done);
  void fetch_assume_role(Done done);
  std::string sts_url() const;
  void get(HttpRequest req, std::function<void(const HttpResponse &)> cb);

  ChainConfig cfg_;
  HttpClient *http_;
  const Logger *log_;
  ChainOptions opts_;
  HttpCallGroup calls_;  // the chain's own STS / IMDS / container calls
  Timer refresh_timer_;

  std::optional<Credentials> current_;
  Source source_ = Source::None;
  Source logged_source_ = Source::None;
  int64_t obtained_ms_ = 0;
  std::list<Waiter> waiters_;
  uint64_t next_ticket_ = 1;
  bool resolving_ = false;   // a full pass over the chain
  bool refreshing_ = false;  // a background refresh from source_
  std::vector<std::string> tried_;
  std::string last_error_;
  uint64_t last_failure_ms_ = 0;  // loop time of the last failed pass
  bool has_failed_ = false;
  // Refresh retries: capped exponential with jitter, so the workers' chains
  // that failed together do not retry together. Set up in the constructor.
  common::Retry refresh_retry_{common::Backoff(0, 0), 0};
  bool warned_refresh_ = false;
  std::string region_hint_;
  bool destroying_ = false;
  uint64_t refreshes_ = 0;
  uint64_t cooldown_ms_ = 0;  // after a failed pass: failure_cooldown_ms, or the backoff (roles)

  // AssumeRole: the base chain, a pending acquire() on it, where its
  // credentials came from, the text source() returns, the last error logged.
  Chain *base_ = nullptr;
  std::unique_ptr<Chain> owned_base_;
  uint64_t base_ticket_ = 0;
  std::string base_source_;
  std::string source_text_;
  std::string logged_error_;

  Counter *fetch_ok_ = nullptr;
  Counter *fetch_failed_ = nullptr;
};

// The chains of one worker, one per distinct config.
class Registry {
 public:
  Registry(HttpClient *http, const Logger *log, MetricsRegistry *metrics, ChainOptions opts = {})
      : http_(http), log_(log), metrics_(metrics), opts_(std::move(opts)) {}
  Chain *get(const ingestd_aws_config_t &cfg);
  Chain *get(ChainConfig cfg);
  size_t size() const { return chains_.size() + roles_.size(); }

 private:
  HttpClient *http_;
  const Logger *log_;
  MetricsRegistry *metrics_;
  ChainOptions opts_;
  std::map<std::string, std::unique_ptr<Chain>> chains_;
  // Role chains borrow a base chain from chains_: declared after it, so
  // destroyed first.
  std::map<std::string, std::unique_ptr<Chain>> roles_;
};

}  // namespace ingestd::aws
