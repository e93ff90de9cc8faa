// Test-only: a throwaway CA and certificates it signs, made with OpenSSL's
// API and written as PEM files, so unit tests and fuzzers need no openssl CLI
// and no committed keys. Header-only; link OpenSSL::SSL.
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

namespace ingestd::tls::testing {

struct KeyPair {
  EVP_PKEY *key = nullptr;
  X509 *cert = nullptr;
  KeyPair() = default;
  KeyPair(const KeyPair &) = delete;
  KeyPair &operator=(const KeyPair &) = delete;
  KeyPair(KeyPair &&o) noexcept : key(o.key), cert(o.cert) { o.key = nullptr, o.cert = nullptr; }
  ~KeyPair() {
    EVP_PKEY_free(key);
    X509_free(cert);
  }
};

inline void add_ext(X509 *cert, X509 *issuer, int nid, const char *value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION *ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value);
  if (!ext) throw std::runtime_error("bad extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

// A certificate for `cn` with subjectAltName `san` ("DNS:localhost,IP:127.0.0.1"
// or empty), signed by `ca` (self-signed CA when ca is null).
inline KeyPair make_cert(const std::string &cn, const std::string &san, const KeyPair *ca,
                         long days = 1) {
  KeyPair kp;
  kp.key = EVP_EC_gen("P-256");
  kp.cert = X509_new();
  if (!kp.key || !kp.cert) throw std::runtime_error("out of memory");
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(kp.cert), serial++);
  X509_set_version(kp.cert, 2);
  X509_gmtime_adj(X509_getm_notBefore(kp.cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(kp.cert), days * 86400);
  X509_set_pubkey(kp.cert, kp.key);
  X509_NAME *name = X509_get_subject_name(kp.cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char *>(cn.c_str()), -1, -1, 0);
  X509 *issuer = ca ? ca->cert : kp.cert;
  X509_set_issuer_name(kp.cert, X509_get_subject_name(issuer));
  if (!ca) {
    add_ext(kp.cert, issuer, NID_basic_constraints, "critical,CA:TRUE");
    add_ext(kp.cert, issuer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    add_ext(kp.cert, issuer, NID_basic_constraints, "CA:FALSE");
    if (!san.empty()) add_ext(kp.cert, issuer, NID_subject_alt_name, san.c_str());
  }
  add_ext(kp.cert, issuer, NID_subject_key_identifier, "hash");
  if (X509_sign(kp.cert, ca ? ca->key : kp.key, EVP_sha256()) == 0)
    throw std::runtime_error("cannot sign");
  return kp;
}

inline void write_cert(const KeyPair &kp, const std::string &path) {
  FILE *f = std::fopen(path.c_str(), "w");
  if (!f) throw std::runtime_error("cannot write " + path);
  PEM_write_X509(f, kp.cert);
  std::fclose(f);
}

inline void write_key(const KeyPair &kp, const std::string &path) {
  FILE *f = std::fopen(path.c_str(), "w");
  if (!f) throw std::runtime_error("cannot write " + path);
  PEM_write_PrivateKey(f, kp.key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(f);
}

// dir/ca.pem, dir/server.pem + server.key (CN localhost, SAN localhost and
// 127.0.0.1), dir/client.pem + client.key (CN rider-app), and
// dir/other-ca.pem + dir/other-client.pem/.key from an unrelated CA.
inline void write_test_pki(const std::string &dir) {
  KeyPair ca = make_cert("ingestd test CA", "", nullptr);
  KeyPair server = make_cert("localhost", "DNS:localhost,IP:127.0.0.1", &ca);
  KeyPair client = make_cert("rider-app", "DNS:rider-app.example", &ca);
  KeyPair other = make_cert("other CA", "", nullptr);
  KeyPair other_client = make_cert("intruder", "DNS:intruder.example", &other);
  write_cert(ca, dir + "/ca.pem");
  write_cert(server, dir + "/server.pem");
  write_key(server, dir + "/server.key");
  write_cert(client, dir + "/client.pem");
  write_key(client, dir + "/client.key");
  write_cert(other, dir + "/other-ca.pem");
  write_cert(other_client, dir + "/other-client.pem");
  write_key(other_client, dir + "/other-client.key");
}

}  // namespace ingestd::tls::testing
