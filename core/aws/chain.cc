// The credentials chain: resolution, background refresh, and each source.
#include "aws/chain.h"
#include "common/text.h"

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

namespace ingestd::aws {

using common::iequals;
using common::trim;
namespace {

constexpr Chain::Source kOrder[] = {Chain::Source::Explicit,    Chain::Source::Environment,
                                    Chain::Source::WebIdentity, Chain::Source::Container,
                                    Chain::Source::Profile,     Chain::Source::Imds};
constexpr size_t kSources = sizeof kOrder / sizeof kOrder[0];
constexpr const char *kScope = "aws credentials";

// Small local files only (token files, ~/.aws/*): read synchronously.
bool read_small_file(const std::string &path, std::string *out, std::string *why) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    if (why) *why = "cannot read " + path + ": " + std::strerror(errno);
    return false;
  }
  std::ostringstream ss;
  ss << f.rdbuf();
  *out = ss.str();
  if (out->size() > (1u << 20)) {
    if (why) *why = path + " is larger than 1 MiB";
    return false;
  }
  return true;
}

std::string strip_slash(std::string s) {
  while (!s.empty() && s.back() == '/')
    s.pop_back();
  return s;
}

// The host of an http:// or https:// URL (brackets kept for IPv6).
std::string url_host(std::string_view url, bool *https) {
  *https = url.size() >= 8 && iequals(url.substr(0, 8), "https://");
  size_t start = url.find("://");
  if (start == std::string_view::npos) return {};
  std::string_view rest = url.substr(start + 3);
  rest = rest.substr(0, rest.find_first_of("/?#"));
  if (size_t at = rest.rfind('@'); at != std::string_view::npos) rest = rest.substr(at + 1);
  if (!rest.empty() && rest.front() == '[') return std::string(rest.substr(0, rest.find(']') + 1));
  return std::string(rest.substr(0, rest.find(':')));
}

// AWS SDKs only send the container authorization token over plain HTTP to
// loopback or the ECS / EKS Pod Identity agent addresses.
bool container_host_allowed(std::string_view url) {
  bool https = false;
  std::string host = url_host(url, &https);
  if (https) return true;
  return host == "localhost" || host.rfind("127.", 0) == 0 || host == "[::1]" ||
         host == "169.254.170.2" || host == "169.254.170.23" || host == "[fd00:ec2::23]";
}

}  // namespace

ChainConfig ChainConfig::from_abi(const ingestd_aws_config_t &c) {
  auto s = [](const char *p) { return p ? std::string(p) : std::string(); };
  // A plugin built against an older header passed a smaller struct: read
  // only what it covers.
  size_t size = c.struct_size ? c.struct_size : offsetof(ingestd_aws_config_t, role_arn);
  auto has = [size](size_t offset, size_t len) { return offset + len <= size; };
  ChainConfig o;
  o.access_key_id = s(c.access_key_id);
  o.secret_access_key = s(c.secret_access_key);
  o.session_token = s(c.session_token);
  o.profile = s(c.profile);
  o.region = s(c.region);
  o.sts_endpoint = s(c.sts_endpoint);
  o.imds_endpoint = s(c.imds_endpoint);
  o.container_endpoint = s(c.container_endpoint);
  if (has(offsetof(ingestd_aws_config_t, role_arn), sizeof c.role_arn)) o.role_arn = s(c.role_arn);
  if (has(offsetof(ingestd_aws_config_t, external_id), sizeof c.external_id))
    o.external_id = s(c.external_id);
  if (has(offsetof(ingestd_aws_config_t, role_session_name), sizeof c.role_session_name))
    o.role_session_name = s(c.role_session_name);
  if (has(offsetof(ingestd_aws_config_t, role_duration_s), sizeof c.role_duration_s))
    o.role_duration_s = c.role_duration_s;
  return o;
}

ChainConfig ChainConfig::base() const {
  ChainConfig b = *this;
  b.role_arn.clear();
  b.external_id.clear();
  b.role_session_name.clear();
  b.role_duration_s = 0;
  return b;
}

std::string ChainConfig::key() const {
  std::string k;
  for (const std::string *f :
       {&access_key_id, &secret_access_key, &session_token, &profile, &region, &sts_endpoint,
        &imds_endpoint, &container_endpoint, &role_arn, &external_id, &role_session_name}) {
    k += std::to_string(f->size());
    k += ':';
    k += *f;
  }
  k += std::to_string(role_duration_s);
  return k;
}

const char *Chain::source_name(Source s) {
  switch (s) {
    case Source::Explicit:
      return "config";
    case Source::Environment:
      return "environment";
    case Source::WebIdentity:
      return "web identity";
    case Source::Container:
      return "container";
    case Source::Profile:
      return "profile";
    case Source::Imds:
      return "imds";
    case Source::AssumeRole:
      return "assumed role";
    case Source::None:
      break;
  }
  return "none";
}

Chain::Chain(ChainConfig cfg, HttpClient *http, const Logger *log, MetricsRegistry *metrics,
             ChainOptions opts, Chain *base)
    : cfg_(std::move(cfg)), http_(http), log_(log), opts_(std::move(opts)) {
  cooldown_ms_ = opts_.failure_cooldown_ms;
  if (cfg_.assumes_role()) {
    base_ = base;
    if (!base_) {
      owned_base_ = std::make_unique<Chain>(cfg_.base(), http, log, metrics, opts_);
      base_ = owned_base_.get();
    }
    // AssumeRole credentials may be short (900 s and up; test peers issue
    // less): refresh at half life at the latest.
    opts_.refresh.max_fraction = std::min(opts_.refresh.max_fraction, 0.5);
  }
  // Seeded apart per chain (each worker has its own).
  refresh_retry_ = common::Retry(common::Backoff(opts_.retry_initial_ms, opts_.retry_max_ms),
                                 uv_hrtime() ^ reinterpret_cast<uintptr_t>(this));
  if (!opts_.wall_ms) {
    opts_.wall_ms = [] {
      using namespace std::chrono;
      return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
    };
  }
  if (!opts_.getenv) {
    opts_.getenv = [](const char *name) -> std::optional<std::string> {
      const char *v = std::getenv(name);  // read-only; the daemon never sets its environment
      if (!v) return std::nullopt;
      return std::string(v);
    };
  }
  refresh_timer_.init(http_->loop());
  // Background refreshes must not keep a stopping worker's loop alive.
  refresh_timer_.unref();
  if (metrics) {
    fetch_ok_ = metrics->counter("ingestd_aws_credentials_fetches_total",
                                 "AWS credential fetches (chain resolutions and refreshes)",
                                 {{"result", "ok"}});
    fetch_failed_ = metrics->counter("ingestd_aws_credentials_fetches_total",
                                     "AWS credential fetches (chain resolutions and refreshes)",
                                     {{"result", "error"}});
  }
}

Chain::~Chain() {
  destroying_ = true;
  refresh_timer_.stop();
  if (base_ticket_) base_->cancel(base_ticket_);
  calls_.close();  // their callbacks run now and see destroying_
  flush_waiters(nullptr, "credentials: the credentials chain was shut down");
}

int64_t Chain::now() const {
  return opts_.wall_ms();
}

std::optional<std::string> Chain::env(const char *name) const {
  auto v = opts_.getenv(name);
  if (v && v->empty()) return std::nullopt;
  return v;
}

bool Chain::usable() const {
  if (!current_) return false;
  if (current_->expiration_ms == 0) return true;
  int64_t skew = opts_.expiry_skew_ms;
  // Assumed-role credentials shorter than 4 skews stay usable for 3/4 of
  // their life (they are refreshed at half life).
  if (base_) skew = std::min<int64_t>(skew, (current_->expiration_ms - obtained_ms_) / 4);
  return now() + skew < current_->expiration_ms;
}

const char *Chain::source() const {
  if (!current_) return nullptr;
  return source_ == Source::AssumeRole ? source_text_.c_str() : source_name(source_);
}

std::string Chain::region() const {
  if (!cfg_.region.empty()) return cfg_.region;
  if (!region_hint_.empty()) return region_hint_;
  if (auto r = env("AWS_REGION")) return *r;
  if (auto r = env("AWS_DEFAULT_REGION")) return *r;
  return "us-east-1";
}

uint64_t Chain::acquire(std::string_view region_hint, Ready ready) {
  if (region_hint_.empty()) region_hint_ = std::string(region_hint);
  if (usable()) {
    ready(&*current_, std::string());
    return 0;
  }
  if (!resolving_ && !refreshing_ && has_failed_ &&
      uv_now(http_->loop()) - last_failure_ms_ < cooldown_ms_) {
    ready(nullptr, last_error_);
    return 0;
  }
  uint64_t ticket = next_ticket_++;
  waiters_.push_back(Waiter{ticket, std::move(ready)});
  if (!resolving_ && !refreshing_) {
    resolving_ = true;
    resolve(0);
  }
  return ticket;
}

void Chain::cancel(uint64_t ticket) {
  for (auto it = waiters_.begin(); it != waiters_.end(); ++it) {
    if (it->ticket == ticket) {
      waiters_.erase(it);
      return;
    }
  }
}

void Chain::flush_waiters(const Credentials *c, const std::string &error) {
  std::list<Waiter> ws;
  ws.swap(waiters_);
  for (auto &w : ws)
    w.ready(c, error);
}

std::function<std::function<void()>(HttpRequest &, HttpRequest::Ready)> Chain::signer(
    std::string service, std::string region) {
  return [this, service = std::move(service), region = std::move(region)](
             HttpRequest &req, HttpRequest::Ready ready) -> std::function<void()> {
    HttpRequest *r = &req;  // lives in its call, which waits for us
    uint64_t t = acquire(
        region, [this, r, ready, service, region](const Credentials *c, const std::string &error) {
          if (!c) {
            ready(error);
            return;
          }
          std::string why;
          if (!sign_request(r, *c, service, region, now() / 1000, &why)) {
            ready("sigv4: " + why);
            return;
          }
          ready(std::string());
        });
    if (t == 0) return {};
    return [this, t] { cancel(t); };
  };
}

void Chain::resolve(size_t i) {
  if (base_) {  // a role has one source
    fetch(Source::AssumeRole, [this](std::optional<Credentials> c, std::string why) {
      if (destroying_) return;
      if (c) {
        on_resolved(Source::AssumeRole, std::move(*c));
        return;
      }
      on_failed("credentials: assuming role " + cfg_.role_arn + " failed: " + why);
    });
    return;
  }
  if (i == 0) tried_.clear();
  if (i >= kSources) {
    on_all_failed();
    return;
  }
  Source s = kOrder[i];
  fetch(s, [this, s, i](std::optional<Credentials> c, std::string why) {
    if (destroying_) return;
    if (c) {
      on_resolved(s, std::move(*c));
      return;
    }
    tried_.push_back(std::string(source_name(s)) + ": " + why);
    resolve(i + 1);
  });
}

void Chain::on_resolved(Source s, Credentials c) {
  bool refresh = refreshing_;
  resolving_ = refreshing_ = false;
  has_failed_ = false;
  refresh_retry_.succeeded();
  warned_refresh_ = false;
  current_ = std::move(c);
  source_ = s;
  obtained_ms_ = now();
  if (fetch_ok_) fetch_ok_->add();
  if (refresh) ++refreshes_;
  if (s == Source::AssumeRole) {
    if (!logged_error_.empty() && log_) {
      log_->logf(LogLevel::Info, kScope, "assuming role %s succeeded again", cfg_.role_arn.c_str());
    }
    logged_error_.clear();
    source_text_ = "assumed role " + cfg_.role_arn + " via " + base_source_;
  }
  if (log_) {
    std::string expiry = current_->expiration_ms
                             ? ", valid for " +
                                   std::to_string((current_->expiration_ms - obtained_ms_) / 1000) +
                                   " s"
                             : "";
    if (s != logged_source_) {
      log_->logf(LogLevel::Info, kScope, "using credentials from %s (access key %s%s)", source(),
                 current_->access_key_id.c_str(), expiry.c_str());
      logged_source_ = s;
    } else {
      log_->logf(LogLevel::Debug, kScope, "credentials from %s renewed (access key %s%s)", source(),
                 current_->access_key_id.c_str(), expiry.c_str());
    }
  }
  schedule_refresh();
  flush_waiters(&*current_, std::string());
}

void Chain::on_all_failed() {
  std::string tried;
  for (const auto &t : tried_) {
    if (!tried.empty()) tried += "; ";
    tried += t;
  }
  on_failed("credentials: no source in the chain had credentials (tried: " + tried + ")");
}

void Chain::on_failed(std::string error) {
  resolving_ = false;
  last_error_ = std::move(error);
  if (fetch_failed_) fetch_failed_->add();
  if (base_) {
    // STS refused or was unreachable: back off (capped, with jitter) before
    // asking again, however many requests want credentials meanwhile. Each
    // new reason is logged once, at Warn.
    cooldown_ms_ = refresh_retry_.failed();
    if (log_) {
      LogLevel level = last_error_ == logged_error_ ? LogLevel::Debug : LogLevel::Warn;
      log_->logf(level, kScope, "%s; retrying in %.1f s", last_error_.c_str(),
                 static_cast<double>(cooldown_ms_) / 1000.0);
    }
    logged_error_ = last_error_;
  } else if (!has_failed_ && log_) {
    log_->log(LogLevel::Warn, kScope, last_error_);
  }
  has_failed_ = true;
  last_failure_ms_ = uv_now(http_->loop());
  flush_waiters(nullptr, last_error_);
}

void Chain::schedule_refresh() {
  refresh_timer_.stop();
  if (!current_ || current_->expiration_ms == 0) return;
  int64_t t = now();
  int64_t at = refresh_at_ms(t, obtained_ms_, current_->expiration_ms, opts_.refresh);
  refresh_timer_.start(static_cast<uint64_t>(std::max<int64_t>(0, at - t)), 0,
                       [this] { refresh(); });
}

void Chain::refresh() {
  if (resolving_ || refreshing_ || source_ == Source::None || destroying_) return;
  refreshing_ = true;
  Source s = source_;
  fetch(s, [this, s](std::optional<Credentials> c, std::string why) {
    if (destroying_) return;
    if (c) {
      on_resolved(s, std::move(*c));
      return;
    }
    refreshing_ = false;
    if (fetch_failed_) fetch_failed_->add();
    if (usable()) {
      if (!warned_refresh_ && log_) {
        log_->logf(LogLevel::Warn, kScope,
                   "refreshing credentials from %s failed (%s); the current ones are used "
                   "until they expire, retrying",
                   source_name(s), why.c_str());
      }
      warned_refresh_ = true;
      int64_t left = current_->expiration_ms - opts_.expiry_skew_ms - now();
      uint64_t delay = std::min<uint64_t>(refresh_retry_.failed(),
                                          static_cast<uint64_t>(std::max<int64_t>(0, left)));
      refresh_timer_.start(delay, 0, [this] { refresh(); });
      return;
    }
    if (log_) {
      log_->logf(LogLevel::Warn, kScope, "credentials from %s expired and cannot be renewed: %s",
                 source_name(s), why.c_str());
    }
    current_.reset();
    source_ = Source::None;
    if (!waiters_.empty()) {
      resolving_ = true;
      resolve(0);
    }
  });
}

void Chain::get(HttpRequest req, std::function<void(const HttpResponse &)> cb) {
  std::string why;
  auto shared_cb = std::make_shared<std::function<void(const HttpResponse &)>>(std::move(cb));
  HttpCall *c = http_->start(
      std::move(req), [shared_cb](const HttpResponse &r) { (*shared_cb)(r); }, &calls_, &why);
  if (!c) {
    HttpResponse r;
    r.error = why;
    (*shared_cb)(r);
  }
}

void Chain::fetch(Source s, Done done) {
  switch (s) {
    case Source::Explicit: {
      if (cfg_.access_key_id.empty() || cfg_.secret_access_key.empty()) {
        done(std::nullopt, "no keys in the config");
        return;
      }
      Credentials c;
      c.access_key_id = cfg_.access_key_id;
      c.secret_access_key = cfg_.secret_access_key;
      c.session_token = cfg_.session_token;
      done(std::move(c), {});
      return;
    }
    case Source::Environment: {
      auto id = env("AWS_ACCESS_KEY_ID");
      if (!id) id = env("AWS_ACCESS_KEY");
      auto secret = env("AWS_SECRET_ACCESS_KEY");
      if (!secret) secret = env("AWS_SECRET_KEY");
      if (!id || !secret) {
        done(std::nullopt, !id ? "AWS_ACCESS_KEY_ID not set" : "AWS_SECRET_ACCESS_KEY not set");
        return;
      }
      Credentials c;
      c.access_key_id = *id;
      c.secret_access_key = *secret;
      c.session_token = env("AWS_SESSION_TOKEN").value_or("");
      done(std::move(c), {});
      return;
    }
    case Source::WebIdentity:
      fetch_web_identity(std::move(done));
      return;
    case Source::Container:
      fetch_container(std::move(done));
      return;
    case Source::Profile:
      fetch_profile(std::move(done));
      return;
    case Source::Imds:
      fetch_imds(std::move(done));
      return;
    case Source::AssumeRole:
      fetch_assume_role(std::move(done));
      return;
    case Source::None:
      break;
  }
  done(std::nullopt, "no such source");
}

void Chain::fetch_web_identity(Done done) {
  auto file = env("AWS_WEB_IDENTITY_TOKEN_FILE");
  auto role = env("AWS_ROLE_ARN");
  if (!file || !role) {
    done(std::nullopt, !file ? "AWS_WEB_IDENTITY_TOKEN_FILE not set" : "AWS_ROLE_ARN not set");
    return;
  }
  std::string token, why;
  if (!read_small_file(*file, &token, &why)) {
    done(std::nullopt, why);
    return;
  }
  token = std::string(trim(token));
  std::string session = env("AWS_ROLE_SESSION_NAME").value_or("ingestd-" + std::to_string(now()));
  HttpRequest req;
  req.method = "POST";
  req.url = sts_url();
  req.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                 {"Accept", "application/xml"}};
  req.body = "Action=AssumeRoleWithWebIdentity&RoleArn=" + uri_encode(*role, false) +
             "&RoleSessionName=" + uri_encode(session, false) +
             "&Version=2011-06-15&WebIdentityToken=" + uri_encode(token, false);
  req.timeout_ms = opts_.sts_timeout_ms;
  get(std::move(req), [done](const HttpResponse &r) {
    if (!r.error.empty()) {
      done(std::nullopt, "STS: " + r.error);
      return;
    }
    Credentials c;
    std::string why;
    if (!parse_sts_response(r.body, &c, &why)) {
      done(std::nullopt, "HTTP " + std::to_string(r.status) + ": " + why);
      return;
    }
    if (r.status != 200) {
      done(std::nullopt, "STS answered HTTP " + std::to_string(r.status));
      return;
    }
    done(std::move(c), {});
  });
}

std::string Chain::sts_url() const {
  std::string endpoint = cfg_.sts_endpoint;
  if (endpoint.empty()) endpoint = env("AWS_ENDPOINT_URL_STS").value_or("");
  if (endpoint.empty()) {
    std::string r = region();
    endpoint = "https://sts." + r + ".amazonaws.com" + (r.rfind("cn-", 0) == 0 ? ".cn" : "");
  }
  if (endpoint.find('/', endpoint.find("://") + 3) == std::string::npos) endpoint += '/';
  return endpoint;
}

// sts:AssumeRole (Query API), signed with the base chain's credentials. The
// wait for those happens inside base_->acquire, never on the loop.
void Chain::fetch_assume_role(Done done) {
  std::string region = this->region();
  uint64_t t = base_->acquire(region, [this, done, region](const Credentials *base,
                                                           const std::string &error) {
    base_ticket_ = 0;
    if (!base) {
      done(std::nullopt, "no base credentials: " + error);
      return;
    }
    const char *src = base_->source();
    base_source_ = src ? src : "?";
    HttpRequest req;
    req.method = "POST";
    req.url = sts_url();
    req.headers = {{"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
                   {"Accept", "application/xml"}};
    std::string body = "Action=AssumeRole";
    if (cfg_.role_duration_s) body += "&DurationSeconds=" + std::to_string(cfg_.role_duration_s);
    if (!cfg_.external_id.empty()) body += "&ExternalId=" + uri_encode(cfg_.external_id, false);
    body += "&RoleArn=" + uri_encode(cfg_.role_arn, false);
    body += "&RoleSessionName=" +
            uri_encode(cfg_.role_session_name.empty() ? "ingestd" : cfg_.role_session_name, false);
    body += "&Version=2011-06-15";
    req.body = std::move(body);
    req.timeout_ms = opts_.sts_timeout_ms;
    std::string why;
    if (!sign_request(&req, *base, "sts", region, now() / 1000, &why)) {
      done(std::nullopt, "sigv4: " + why);
      return;
    }
    std::string via = base_source_;
    get(std::move(req), [this, done, via](const HttpResponse &r) {
      if (destroying_) return;
      if (!r.error.empty()) {
        done(std::nullopt, "STS: " + r.error);
        return;
      }
      Credentials c;
      std::string why;
      bool parsed = parse_sts_response(r.body, &c, &why);
      if (r.status != 200 || !parsed) {
        // "HTTP 403: STS AccessDenied: User: arn:... is not authorized ..."
        done(std::nullopt, "HTTP " + std::to_string(r.status) + (parsed ? "" : ": " + why) +
                               " (signed with credentials from " + via + ")");
        return;
      }
      done(std::move(c), {});
    });
  });
  if (t) base_ticket_ = t;
}

void Chain::fetch_container(Done done) {
  auto rel = env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  auto full = env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
  HttpRequest req;
  if (rel) {
    std::string base = cfg_.container_endpoint.empty() ? "http://169.254.170.2"
                                                       : strip_slash(cfg_.container_endpoint);
    req.url = base + (rel->front() == '/' ? "" : "/") + *rel;
  } else if (full) {
    if (!container_host_allowed(*full)) {
      done(std::nullopt,
           "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https, loopback or the "
           "ECS/EKS agent address");
      return;
    }
    req.url = *full;
  } else {
    done(std::nullopt, "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI/FULL_URI not set");
    return;
  }
  std::string auth;
  if (auto file = env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) {
    std::string why;
    if (!read_small_file(*file, &auth, &why)) {
      done(std::nullopt, why);
      return;
    }
    auth = std::string(trim(auth));
  } else if (auto tok = env("AWS_CONTAINER_AUTHORIZATION_TOKEN")) {
    auth = *tok;
  }
  req.method = "GET";
  if (!auth.empty()) req.headers.emplace_back("Authorization", auth);
  req.headers.emplace_back("Accept", "application/json");
  req.timeout_ms = opts_.metadata_timeout_ms;
  std::string url = req.url;
  get(std::move(req), [done, url](const HttpResponse &r) {
    if (!r.error.empty()) {
      done(std::nullopt, url + ": " + r.error);
      return;
    }
    if (r.status != 200) {
      done(std::nullopt, url + " answered HTTP " + std::to_string(r.status));
      return;
    }
    Credentials c;
    std::string why;
    if (!parse_credentials_json(r.body, &c, &why)) {
      done(std::nullopt, url + ": " + why);
      return;
    }
    done(std::move(c), {});
  });
}

void Chain::fetch_profile(Done done) {
  std::string home = env("HOME").value_or("");
  auto expand = [&](std::string p) {
    if (p.rfind("~/", 0) == 0 && !home.empty()) p = home + p.substr(1);
    return p;
  };
  std::string cred_path =
      expand(env("AWS_SHARED_CREDENTIALS_FILE").value_or(home.empty() ? "" : "~/.aws/credentials"));
  std::string config_path =
      expand(env("AWS_CONFIG_FILE").value_or(home.empty() ? "" : "~/.aws/config"));
  std::string profile = cfg_.profile;
  if (profile.empty()) profile = env("AWS_PROFILE").value_or("default");
  std::optional<IniFile> creds_file, config_file;
  std::string text, why;
  if (!cred_path.empty() && read_small_file(cred_path, &text, nullptr))
    creds_file = parse_ini(text);
  if (!config_path.empty() && read_small_file(config_path, &text, nullptr))
    config_file = parse_ini(text);
  if (!creds_file && !config_file) {
    done(std::nullopt, "no " + (cred_path.empty() ? std::string("credentials file") : cred_path) +
                           " nor " +
                           (config_path.empty() ? std::string("config file") : config_path));
    return;
  }
  Credentials c;
  if (!profile_credentials(creds_file ? &*creds_file : nullptr,
                           config_file ? &*config_file : nullptr, profile, &c, &why)) {
    done(std::nullopt, why);
    return;
  }
  done(std::move(c), {});
}

void Chain::fetch_imds(Done done) {
  if (auto d = env("AWS_EC2_METADATA_DISABLED"); d && iequals(*d, "true")) {
    done(std::nullopt, "AWS_EC2_METADATA_DISABLED=true");
    return;
  }
  std::string base = cfg_.imds_endpoint;
  if (base.empty()) base = env("AWS_EC2_METADATA_SERVICE_ENDPOINT").value_or("");
  if (base.empty()) base = "http://169.254.169.254";
  base = strip_slash(base);
  uint64_t timeout = opts_.metadata_timeout_ms;
  HttpRequest tok;
  tok.method = "PUT";
  tok.url = base + "/latest/api/token";
  tok.headers = {{"X-aws-ec2-metadata-token-ttl-seconds", "21600"}};
  tok.timeout_ms = timeout;
  get(std::move(tok), [this, done, base, timeout](const HttpResponse &r) {
    if (destroying_) return;
    if (!r.error.empty() || r.status != 200 || r.body.empty()) {
      done(std::nullopt, base + ": IMDSv2 token: " +
                             (r.error.empty() ? "HTTP " + std::to_string(r.status) : r.error));
      return;
    }
    std::string token(trim(r.body));
    HttpRequest list;
    list.url = base + "/latest/meta-data/iam/security-credentials/";
    list.headers = {{"X-aws-ec2-metadata-token", token}};
    list.timeout_ms = timeout;
    get(std::move(list), [this, done, base, timeout, token](const HttpResponse &r2) {
      if (destroying_) return;
      if (!r2.error.empty() || r2.status != 200) {
        done(std::nullopt,
             base + ": " +
                 (r2.error.empty() ? r2.status == 404 ? std::string("no IAM role attached")
                                                      : "HTTP " + std::to_string(r2.status)
                                   : r2.error));
        return;
      }
      std::string_view body = trim(r2.body);
      std::string role(trim(body.substr(0, body.find('\n'))));
      if (role.empty()) {
        done(std::nullopt, base + ": no IAM role attached");
        return;
      }
      HttpRequest get_creds;
      get_creds.url = base + "/latest/meta-data/iam/security-credentials/" + role;
      get_creds.headers = {{"X-aws-ec2-metadata-token", token}};
      get_creds.timeout_ms = timeout;
      get(std::move(get_creds), [done, base](const HttpResponse &r3) {
        if (!r3.error.empty() || r3.status != 200) {
          done(std::nullopt,
               base + ": " + (r3.error.empty() ? "HTTP " + std::to_string(r3.status) : r3.error));
          return;
        }
        Credentials c;
        std::string why;
        if (!parse_credentials_json(r3.body, &c, &why)) {
          done(std::nullopt, base + ": " + why);
          return;
        }
        done(std::move(c), {});
      });
    });
  });
}

// ---- Registry

Chain *Registry::get(const ingestd_aws_config_t &cfg) {
  return get(ChainConfig::from_abi(cfg));
}

Chain *Registry::get(ChainConfig c) {
  auto &map = c.assumes_role() ? roles_ : chains_;
  std::string key = c.key();
  auto it = map.find(key);
  if (it != map.end()) return it->second.get();
  // A role's base chain is the chain of its config without the role, shared
  // with every output that uses those credentials directly.
  Chain *base = c.assumes_role() ? get(c.base()) : nullptr;
  auto chain = std::make_unique<Chain>(std::move(c), http_, log_, metrics_, opts_, base);
  Chain *raw = chain.get();
  map.emplace(std::move(key), std::move(chain));
  return raw;
}

}  // namespace ingestd::aws
