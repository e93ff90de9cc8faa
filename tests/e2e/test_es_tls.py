"""Outgoing TLS of the elasticsearch output: ca_file, client_cert, client_key.

A CA, a server certificate for 127.0.0.1 and a client certificate are made
with openssl in a temporary directory; tests/peers/es_peer.py serves HTTPS
with them (--tls-cert/--tls-key, and --tls-client-ca for mutual TLS).
- with ca_file the records arrive;
- without it, or with another CA, the peer's certificate is refused: logged,
  nothing delivered, the records kept (buffer = "disk") and delivered when
  the daemon starts again with the right ca_file;
- a peer that requires a client certificate refuses the daemon without
  client_cert and takes the records with it.
"""

import http.client
import json
import os
import shutil
import ssl
import tempfile
import unittest

from harness import Daemon, EsPeer, wait_for
from needs import require_tool
from pki import make_ca, make_cert

CONFIG = """
[inputs.logs]
plugin = "http"
listener = "public"
path = "/v1/logs"

[outputs.es]
plugin = "elasticsearch"
hosts = ["https://127.0.0.1:{port}"]
index = "logs"
flush_interval = "50ms"
retry_initial = "50ms"
retry_max = "300ms"
host_cooldown = "200ms"
buffer = "disk"
{tls}

[[routes]]
match = "logs"
to = ["es"]
"""


class EsTlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        require_tool("openssl")
        cls.dir = tempfile.mkdtemp(prefix="ingestd-tls-")
        make_ca(cls.dir, "ca")
        make_ca(cls.dir, "other-ca")
        make_cert(cls.dir, "server", "ca",
                  "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
                  "extendedKeyUsage=serverAuth\n")
        make_cert(cls.dir, "client", "ca",
                  "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.dir, name)

    def peer(self, mutual=False):
        args = ["--tls-cert", self.path("server.pem"), "--tls-key", self.path("server.key")]
        if mutual:
            args += ["--tls-client-ca", self.path("ca.pem")]
        return EsPeer(self, *args)

    def get(self, peer, path):
        """A control call over TLS (with the client certificate: a mutual-TLS
        peer wants it on every connection)."""
        ctx = ssl.create_default_context(cafile=self.path("ca.pem"))
        ctx.load_cert_chain(self.path("client.pem"), self.path("client.key"))
        conn = http.client.HTTPSConnection("127.0.0.1", peer.port, timeout=20, context=ctx)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            data = r.read()
            self.assertEqual(r.status, 200, data[:300])
            return json.loads(data)
        finally:
            conn.close()

    def stats(self, peer):
        return self.get(peer, "/_peer/stats")

    def docs(self, peer):
        return sorted(g["_source"]["n"] for g in self.get(peer, "/_peer/docs?index=*")["docs"])

    def daemon(self, peer, tls):
        d = Daemon(CONFIG.format(port=peer.port, tls=tls))
        self.addCleanup(d.kill)
        return d.start()

    def stop(self, d):
        self.assertEqual(d.stop(), 0, d.log_text()[-3000:])

    def post(self, d, numbers):
        status, body, _ = d.post("/v1/logs", [{"n": n} for n in numbers])
        self.assertEqual(status, 200, body)

    def wait_docs(self, peer, want, d):
        try:
            wait_for(lambda: self.docs(peer) == want, 30, "documents at the peer", interval=0.1)
        except AssertionError:
            raise AssertionError("peer has %s, want %s\n%s" % (self.docs(peer), want,
                                                               d.log_text()[-3000:]))

    def refused_then_kept(self, peer, wrong_tls, good_tls):
        """wrong_tls is refused (logged, nothing arrives); the records stay in
        the disk buffer and arrive when the daemon starts with good_tls."""
        d = self.daemon(peer, wrong_tls)
        self.post(d, range(10))
        d.wait_log(r"127\.0\.0\.1:%d failed \(.+\); skipping it" % peer.port)
        wait_for(lambda: self.stats(peer)["tls_failures"] >= 2, 20, "refused handshakes")
        self.assertEqual(self.stats(peer)["bulk_calls"], 0)
        self.assertEqual(self.docs(peer), [])
        self.stop(d)
        self.assertEqual(self.docs(peer), [])
        d.write_config(open(d.config_path).read().replace(wrong_tls, good_tls))
        d.start()
        self.addCleanup(self.stop, d)
        self.post(d, range(10, 15))
        self.wait_docs(peer, list(range(15)), d)
        return d

    def test_ca_file_verifies_the_peer(self):
        peer = self.peer()
        d = self.daemon(peer, 'ca_file = "%s"' % self.path("ca.pem"))
        self.addCleanup(self.stop, d)
        self.post(d, range(20))
        self.wait_docs(peer, list(range(20)), d)
        self.assertEqual(self.stats(peer)["tls_failures"], 0)

    def test_without_ca_file_the_peer_is_refused_and_records_are_kept(self):
        peer = self.peer()
        d = self.refused_then_kept(peer, "# no ca_file",
                                   'ca_file = "%s"' % self.path("ca.pem"))
        self.assertNotIn("failed (", d.log_text())

    def test_wrong_ca_is_refused_and_records_are_kept(self):
        peer = self.peer()
        d = self.refused_then_kept(peer, 'ca_file = "%s"' % self.path("other-ca.pem"),
                                   'ca_file = "%s"' % self.path("ca.pem"))
        self.assertNotIn("failed (", d.log_text())

    def test_peer_requiring_a_client_certificate(self):
        peer = self.peer(mutual=True)
        ca = 'ca_file = "%s"' % self.path("ca.pem")
        with_cert = ca + '\nclient_cert = "%s"\nclient_key = "%s"' % (
            self.path("client.pem"), self.path("client.key"))
        self.refused_then_kept(peer, ca, with_cert)


if __name__ == "__main__":
    unittest.main()
