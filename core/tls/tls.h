// The one TLS layer of ingestd (OpenSSL), used by the listeners and by the
// host stream service. No sockets here: a Session moves bytes between two
// memory BIOs, so the caller's uv stream never blocks and a fuzzer can drive
// a session from a byte array.
//
// Threading: a Context is immutable once built and may be shared by every
// worker (OpenSSL's SSL_CTX is safe for creating sessions from many threads);
// a Session belongs to one loop thread.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <string>
#include <string_view>

typedef struct ssl_ctx_st SSL_CTX;
typedef struct ssl_st SSL;
typedef struct bio_st BIO;

namespace ingestd::tls {

// What a listener serves. Files are PEM; cert_file may hold the whole chain.
struct ServerConfig {
  std::string cert_file;
  std::string key_file;
  std::string client_ca_file;       // set: a client certificate signed by it is required
  std::string min_version = "1.2";  // "1.2" | "1.3"
};

// How a client verifies the server and proves itself.
struct ClientConfig {
  std::string ca_file;  // empty: the system's store
  bool verify = true;   // certificate chain and host name
  std::string client_cert;
  std::string client_key;
  std::string min_version = "1.2";
};

class Context {
 public:
  // nullptr with *err naming the file and OpenSSL's reason ("tls_key
  // /etc/k.pem does not match tls_cert /etc/c.pem").
  static std::shared_ptr<const Context> server(const ServerConfig &cfg, std::string *err);
  static std::shared_ptr<const Context> client(const ClientConfig &cfg, std::string *err);
  ~Context();
  Context(const Context &) = delete;
  Context &operator=(const Context &) = delete;

  SSL_CTX *get() const { return ctx_; }
  bool is_server() const { return server_; }
  bool verify() const { return verify_; }
  // Subject of the leaf certificate a server context serves ("CN=ingest.example"), for logs.
  const std::string &subject() const { return subject_; }

 private:
  Context(SSL_CTX *ctx, bool server, bool verify) : ctx_(ctx), server_(server), verify_(verify) {}
  SSL_CTX *ctx_;
  bool server_;
  bool verify_;
  std::string subject_;
};

// One TLS connection's state. Ciphertext from the network goes in with
// feed(); plaintext comes out of read(); plaintext to send goes in with
// write(); ciphertext to send comes out of take_output().
class Session {
 public:
  enum class Status {
    kOk,        // progress (bytes read, handshake done)
    kWantMore,  // needs more ciphertext from the peer
    kClosed,    // the peer sent close_notify
    kError      // handshake or protocol failure: see error(); close the connection
  };
  struct ReadResult {
    size_t n = 0;
    Status status = Status::kOk;
  };

  // Client sessions: server_name is sent as SNI (unless it is an IP address)
  // and checked against the certificate when the context verifies.
  explicit Session(std::shared_ptr<const Context> ctx, std::string_view server_name = {});
  ~Session();
  Session(const Session &) = delete;
  Session &operator=(const Session &) = delete;

  bool valid() const { return ssl_ != nullptr; }  // false: out of memory
  void feed(const char *data, size_t n);
  // Advances the handshake; kOk once it is complete.
  Status handshake();
  bool handshake_done() const { return done_; }
  // Decrypts into `out` (handshaking first when needed). n > 0 with kOk, or
  // n == 0 with kWantMore / kClosed / kError.
  ReadResult read(std::span<char> out);
  // Encrypts all of `plain` (queued until the handshake completes). false
  // on failure (see error()).
  bool write(std::string_view plain);
  // Sends close_notify.
  void shutdown();
  // Ciphertext waiting to be sent, appended to *out; bytes appended.
  size_t take_output(std::string *out);
  bool has_output() const;

  // Why the session failed: OpenSSL's reason, with the certificate check's
  // result when that was it ("certificate verify failed: Hostname mismatch").
  const std::string &error() const { return error_; }
  // The peer certificate's subject CN, else its first subjectAltName (DNS,
  // email, URI or IP); empty without a peer certificate.
  std::string peer_identity() const;
  std::string alpn() const;     // the negotiated protocol, empty if none
  std::string version() const;  // "TLSv1.3"
  bool resumed() const;
  SSL *native() const { return ssl_; }  // for what this class does not wrap

 private:
  Status fail();
  Status flush_pending();
  std::shared_ptr<const Context> ctx_;
  SSL *ssl_ = nullptr;
  BIO *in_ = nullptr;   // network -> SSL (owned by ssl_)
  BIO *out_ = nullptr;  // SSL -> network (owned by ssl_)
  bool done_ = false;
  bool failed_ = false;
  std::string pending_;  // plaintext written before the handshake completed
  std::string error_;
};

// "1.2" -> TLS1_2_VERSION; 0 for anything else.
int protocol_version(std::string_view text);

}  // namespace ingestd::tls
