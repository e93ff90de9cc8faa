// OpenSSL contexts and memory-BIO sessions (see tls.h).
#include "tls/tls.h"

#include <arpa/inet.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

namespace ingestd::tls {

namespace {

// OpenSSL's queued errors as one line, the queue emptied.
std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    // "error:0A000086:SSL routines::certificate verify failed": keep the reason.
    const char *reason = ERR_reason_error_string(e);
    if (!out.empty()) out += "; ";
    out += reason ? reason : buf;
  }
  return out.empty() ? "unknown TLS error" : out;
}

// A file the user named must be readable before OpenSSL gets it, so the
// message says "No such file or directory" rather than "system lib".
bool readable(const std::string &what, const std::string &path, std::string *err) {
  FILE *f = std::fopen(path.c_str(), "rb");
  if (!f) {
    *err = what + " " + path + ": " + std::strerror(errno);
    return false;
  }
  std::fclose(f);
  return true;
}

bool is_ip(std::string_view host) {
  std::string h(host);
  unsigned char buf[16];
  return inet_pton(AF_INET, h.c_str(), buf) == 1 || inet_pton(AF_INET6, h.c_str(), buf) == 1;
}

std::string name_entry(X509_NAME *name, int nid) {
  int idx = X509_NAME_get_index_by_NID(name, nid, -1);
  if (idx < 0) return {};
  ASN1_STRING *data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
  unsigned char *utf8 = nullptr;
  int len = ASN1_STRING_to_UTF8(&utf8, data);
  if (len < 0) return {};
  std::string out(reinterpret_cast<char *>(utf8), static_cast<size_t>(len));
  OPENSSL_free(utf8);
  return out;
}

std::string first_san(X509 *cert) {
  auto *names =
      static_cast<GENERAL_NAMES *>(X509_get_ext_d2i(cert, NID_subject_alt_name, nullptr, nullptr));
  if (!names) return {};
  std::string out;
  for (int i = 0; i < sk_GENERAL_NAME_num(names) && out.empty(); ++i) {
    GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
    if (gn->type == GEN_DNS || gn->type == GEN_EMAIL || gn->type == GEN_URI) {
      const ASN1_IA5STRING *s = gn->d.ia5;
      out.assign(reinterpret_cast<const char *>(ASN1_STRING_get0_data(s)),
                 static_cast<size_t>(ASN1_STRING_length(s)));
    } else if (gn->type == GEN_IPADD) {
      const ASN1_OCTET_STRING *s = gn->d.ip;
      char text[INET6_ADDRSTRLEN] = "";
      int len = ASN1_STRING_length(s);
      if (len == 4 || len == 16) {
        inet_ntop(len == 4 ? AF_INET : AF_INET6, ASN1_STRING_get0_data(s), text, sizeof text);
        out = text;
      }
    }
  }
  GENERAL_NAMES_free(names);
  return out;
}

// A listener speaks HTTP/1.1 only: a client that offers ALPN without it gets
// no_application_protocol, as nginx answers; one that offers none is served.
int select_alpn(SSL *, const unsigned char **out, unsigned char *outlen, const unsigned char *in,
                unsigned int inlen, void *) {
  static const unsigned char kHttp11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
  unsigned char *selected = nullptr;
  if (SSL_select_next_proto(&selected, outlen, kHttp11, sizeof kHttp11, in, inlen) !=
      OPENSSL_NPN_NEGOTIATED) {
    return SSL_TLSEXT_ERR_ALERT_FATAL;
  }
  *out = selected;
  return SSL_TLSEXT_ERR_OK;
}

// Loads the key after its certificate; a key of another certificate gets
// its own message, not OpenSSL's "key values mismatch".
bool use_key(SSL_CTX *ctx, const char *key_option, const std::string &key_file,
             const char *cert_option, const std::string &cert_file, std::string *err) {
  if (SSL_CTX_use_PrivateKey_file(ctx, key_file.c_str(), SSL_FILETYPE_PEM) == 1 &&
      SSL_CTX_check_private_key(ctx) == 1) {
    return true;
  }
  unsigned long e = ERR_peek_last_error();
  if (e == 0 || ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH) {
    ERR_clear_error();
    *err = std::string(key_option) + " " + key_file + " does not match " + cert_option + " " +
           cert_file;
  } else {
    *err = std::string(key_option) + " " + key_file + ": " + openssl_errors();
  }
  return false;
}

// SSL_get_error() reads the queue, so it must be empty before each SSL call.
// It nearly always is already; ERR_clear_error() walks all 16 slots anyway
// (~840 instructions in OpenSSL 3.0, three times per HTTPS request: 5 % of
// the request's user-space instructions). ERR_peek_error() is the test
// SSL_get_error() itself applies.
void clear_errors() {
  if (ERR_peek_error() != 0) ERR_clear_error();
}

}  // namespace

int protocol_version(std::string_view text) {
  if (text == "1.2") return TLS1_2_VERSION;
  if (text == "1.3") return TLS1_3_VERSION;
  return 0;
}

Context::~Context() {
  SSL_CTX_free(ctx_);
}

std::shared_ptr<const Context> Context::server(const ServerConfig &cfg, std::string *err) {
  int version = protocol_version(cfg.min_version);
  if (version == 0) {
    *err = "tls_min_version must be \"1.2\" or \"1.3\", not \"" + cfg.min_version + "\"";
    return nullptr;
  }
  if (cfg.cert_file.empty() || cfg.key_file.empty()) {
    *err = "tls_cert and tls_key must both be set";
    return nullptr;
  }
  if (!readable("tls_cert", cfg.cert_file, err) || !readable("tls_key", cfg.key_file, err) ||
      (!cfg.client_ca_file.empty() && !readable("tls_client_ca", cfg.client_ca_file, err))) {
    return nullptr;
  }
  ERR_clear_error();
  SSL_CTX *raw = SSL_CTX_new(TLS_server_method());
  if (!raw) {
    *err = "cannot create a TLS context: " + openssl_errors();
    return nullptr;
  }
  std::shared_ptr<Context> ctx(new Context(raw, true, !cfg.client_ca_file.empty()));
  SSL_CTX_set_min_proto_version(raw, version);
  // Renegotiation is a CPU-exhaustion vector and HTTP/1.1 needs none.
  SSL_CTX_set_options(raw, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
  // An idle keep-alive connection keeps no TLS buffers (as nginx sets it).
  SSL_CTX_set_mode(raw, SSL_MODE_RELEASE_BUFFERS);
  if (SSL_CTX_use_certificate_chain_file(raw, cfg.cert_file.c_str()) != 1) {
    *err = "tls_cert " + cfg.cert_file + ": " + openssl_errors();
    return nullptr;
  }
  if (!use_key(raw, "tls_key", cfg.key_file, "tls_cert", cfg.cert_file, err)) return nullptr;
  if (!cfg.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(raw, cfg.client_ca_file.c_str(), nullptr) != 1) {
      *err = "tls_client_ca " + cfg.client_ca_file + ": " + openssl_errors();
      return nullptr;
    }
    STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(cfg.client_ca_file.c_str());
    if (!names) {
      *err = "tls_client_ca " + cfg.client_ca_file + ": no certificate in it";
      ERR_clear_error();
      return nullptr;
    }
    SSL_CTX_set_client_CA_list(raw, names);
    SSL_CTX_set_verify(raw, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  // Session resumption (tickets and the cache) needs an id context once
  // client certificates are verified.
  static const unsigned char kSessionContext[] = "ingestd";
  SSL_CTX_set_session_id_context(raw, kSessionContext, sizeof kSessionContext - 1);
  SSL_CTX_set_alpn_select_cb(raw, select_alpn, nullptr);
  if (X509 *leaf = SSL_CTX_get0_certificate(raw)) {
    char line[512];
    X509_NAME_oneline(X509_get_subject_name(leaf), line, sizeof line);
    ctx->subject_ = line;
  }
  return ctx;
}

std::shared_ptr<const Context> Context::client(const ClientConfig &cfg, std::string *err) {
  int version = protocol_version(cfg.min_version);
  if (version == 0) {
    *err = "TLS minimum version must be \"1.2\" or \"1.3\", not \"" + cfg.min_version + "\"";
    return nullptr;
  }
  if (cfg.client_cert.empty() != cfg.client_key.empty()) {
    *err = "client_cert and client_key must be set together";
    return nullptr;
  }
  if ((!cfg.ca_file.empty() && !readable("ca_file", cfg.ca_file, err)) ||
      (!cfg.client_cert.empty() && (!readable("client_cert", cfg.client_cert, err) ||
                                    !readable("client_key", cfg.client_key, err)))) {
    return nullptr;
  }
  ERR_clear_error();
  SSL_CTX *raw = SSL_CTX_new(TLS_client_method());
  if (!raw) {
    *err = "cannot create a TLS context: " + openssl_errors();
    return nullptr;
  }
  std::shared_ptr<Context> ctx(new Context(raw, false, cfg.verify));
  SSL_CTX_set_min_proto_version(raw, version);
  SSL_CTX_set_options(raw, SSL_OP_NO_RENEGOTIATION);
  if (cfg.verify) {
    int rc = cfg.ca_file.empty() ? SSL_CTX_set_default_verify_paths(raw)
                                 : SSL_CTX_load_verify_locations(raw, cfg.ca_file.c_str(), nullptr);
    if (rc != 1) {
      *err =
          (cfg.ca_file.empty() ? std::string("the system's CA store") : "ca_file " + cfg.ca_file) +
          ": " + openssl_errors();
      return nullptr;
    }
    SSL_CTX_set_verify(raw, SSL_VERIFY_PEER, nullptr);
  } else {
    SSL_CTX_set_verify(raw, SSL_VERIFY_NONE, nullptr);
  }
  if (!cfg.client_cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(raw, cfg.client_cert.c_str()) != 1) {
      *err = "client_cert " + cfg.client_cert + ": " + openssl_errors();
      return nullptr;
    }
    if (!use_key(raw, "client_key", cfg.client_key, "client_cert", cfg.client_cert, err))
      return nullptr;
  }
  return ctx;
}

Session::Session(std::shared_ptr<const Context> ctx, std::string_view server_name)
    : ctx_(std::move(ctx)) {
  ssl_ = SSL_new(ctx_->get());
  if (!ssl_) return;
  in_ = BIO_new(BIO_s_mem());
  out_ = BIO_new(BIO_s_mem());
  if (!in_ || !out_) {
    BIO_free(in_);
    BIO_free(out_);
    SSL_free(ssl_);
    ssl_ = nullptr;
    return;
  }
  // An empty memory BIO means "no data yet", not end of file.
  BIO_set_mem_eof_return(in_, -1);
  BIO_set_mem_eof_return(out_, -1);
  SSL_set_bio(ssl_, in_, out_);
  if (ctx_->is_server()) {
    SSL_set_accept_state(ssl_);
    return;
  }
  SSL_set_connect_state(ssl_);
  if (!server_name.empty()) {
    std::string name(server_name);
    if (!is_ip(name)) SSL_set_tlsext_host_name(ssl_, name.c_str());
    if (ctx_->verify()) {
      if (is_ip(name)) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl_), name.c_str());
      } else {
        SSL_set1_host(ssl_, name.c_str());
      }
    }
  }
}

Session::~Session() {
  if (ssl_) SSL_free(ssl_);  // frees both BIOs
}

void Session::feed(const char *data, size_t n) {
  if (ssl_ && n > 0) BIO_write(in_, data, static_cast<int>(n));
}

Session::Status Session::fail() {
  failed_ = true;
  long verify = SSL_get_verify_result(ssl_);
  std::string reason = openssl_errors();
  if (verify != X509_V_OK) {
    reason += ": ";
    reason += X509_verify_cert_error_string(verify);
  }
  error_ = reason;
  return Status::kError;
}

Session::Status Session::handshake() {
  if (!ssl_ || failed_) return Status::kError;
  if (done_) return Status::kOk;
  ERR_clear_error();
  int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    done_ = true;
    return flush_pending();
  }
  int e = SSL_get_error(ssl_, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return Status::kWantMore;
  if (e == SSL_ERROR_ZERO_RETURN) return Status::kClosed;
  return fail();
}

Session::Status Session::flush_pending() {
  if (pending_.empty()) return Status::kOk;
  std::string p = std::move(pending_);
  pending_.clear();
  return write(p) ? Status::kOk : Status::kError;
}

Session::ReadResult Session::read(std::span<char> out) {
  if (!done_) {
    Status s = handshake();
    if (s != Status::kOk) return {0, s};
  }
  if (failed_) return {0, Status::kError};
  if (out.empty()) return {0, Status::kOk};
  clear_errors();
  size_t n = 0;
  int rc = SSL_read_ex(ssl_, out.data(), out.size(), &n);
  if (rc == 1) return {n, Status::kOk};
  int e = SSL_get_error(ssl_, rc);
  if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) return {0, Status::kWantMore};
  if (e == SSL_ERROR_ZERO_RETURN) return {0, Status::kClosed};
  return {0, fail()};
}

bool Session::write(std::string_view plain) {
  if (!ssl_ || failed_) return false;
  if (!done_) {
    pending_.append(plain);
    return true;
  }
  while (!plain.empty()) {
    clear_errors();
    size_t n = 0;
    if (SSL_write_ex(ssl_, plain.data(), plain.size(), &n) != 1) {
      fail();
      return false;
    }
    plain.remove_prefix(n);
  }
  return true;
}

void Session::shutdown() {
  // Once: a second SSL_shutdown would wait for the peer's close_notify.
  if (ssl_ && done_ && !failed_ && !(SSL_get_shutdown(ssl_) & SSL_SENT_SHUTDOWN)) {
    ERR_clear_error();
    SSL_shutdown(ssl_);
    ERR_clear_error();
  }
}

size_t Session::take_output(std::string *out) {
  if (!ssl_) return 0;
  size_t pending = BIO_ctrl_pending(out_);
  if (pending == 0) return 0;
  size_t old = out->size();
  out->resize(old + pending);
  int n = BIO_read(out_, out->data() + old, static_cast<int>(pending));
  out->resize(old + (n > 0 ? static_cast<size_t>(n) : 0));
  return n > 0 ? static_cast<size_t>(n) : 0;
}

bool Session::has_output() const {
  return ssl_ && BIO_ctrl_pending(out_) > 0;
}

std::string Session::peer_identity() const {
  if (!ssl_) return {};
  X509 *cert = SSL_get0_peer_certificate(ssl_);
  if (!cert) return {};
  std::string cn = name_entry(X509_get_subject_name(cert), NID_commonName);
  return cn.empty() ? first_san(cert) : cn;
}

std::string Session::alpn() const {
  if (!ssl_) return {};
  const unsigned char *p = nullptr;
  unsigned int len = 0;
  SSL_get0_alpn_selected(ssl_, &p, &len);
  return p ? std::string(reinterpret_cast<const char *>(p), len) : std::string();
}

std::string Session::version() const {
  return ssl_ ? SSL_get_version(ssl_) : "";
}

bool Session::resumed() const {
  return ssl_ && SSL_session_reused(ssl_);
}

}  // namespace ingestd::tls
