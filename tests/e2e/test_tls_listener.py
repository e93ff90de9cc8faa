"""HTTPS on a listener: curl and Python's ssl as clients, mutual TLS, plain
HTTP and random bytes on the TLS port, certificate swaps on SIGHUP and under
watch_config, the handshake bounded by header_timeout, plain and TLS
listeners side by side.

Certificates are made with openssl in a temporary directory (tests/e2e/pki.py).
"""

import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import unittest

from harness import Daemon, run_ingestd, wait_for
from needs import require_tool
from pki import CLIENT_EXT, SERVER_EXT, make_ca, make_cert

FIX = '{"device_id":"d%d","lat":37.5,"lon":127.0,"ts":1700000000000}'

ROUTES = """
[inputs.trace]
plugin = "trace"
listener = "public"
path = "/v1/trace"

[outputs.out]
plugin = "stdout"

[[routes]]
match = "trace"
to = ["out"]
"""


def tls_listener(d, extra=""):
    """Keys appended to the harness's [listeners.public] table."""
    return ('tls_cert = "%s"\ntls_key = "%s"\n' % (os.path.join(d, "live.pem"),
                                                   os.path.join(d, "live.key")) + extra)


class TlsListenerTest(unittest.TestCase):
    leftover = {}  # socket id -> bytes read past an answer

    @classmethod
    def setUpClass(cls):
        require_tool("openssl")
        require_tool("curl")
        cls.dir = tempfile.mkdtemp(prefix="ingestd-tls-listener-")
        make_ca(cls.dir, "ca")
        make_ca(cls.dir, "other-ca")
        make_cert(cls.dir, "server-a", "ca", SERVER_EXT, cn="localhost")
        make_cert(cls.dir, "server-b", "ca", SERVER_EXT, cn="localhost")
        make_cert(cls.dir, "client", "ca", CLIENT_EXT, cn="rider-app")
        make_cert(cls.dir, "intruder", "other-ca", CLIENT_EXT, cn="intruder")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        # Each test serves its own copy, so swapping files touches no other test.
        self.d = tempfile.mkdtemp(prefix="ingestd-tls-live-")
        self.addCleanup(shutil.rmtree, self.d, True)
        self.install("server-a")

    def path(self, name):
        return os.path.join(self.dir, name)

    def install(self, name, key_of=None):
        """Serves NAME's certificate (with KEY_OF's key, to make a mismatch)."""
        for src, dst in ((name + ".pem", "live.pem"), ((key_of or name) + ".key", "live.key")):
            tmp = os.path.join(self.d, dst + ".tmp")
            shutil.copy(self.path(src), tmp)
            os.rename(tmp, os.path.join(self.d, dst))

    def daemon(self, listener_extra="", body=ROUTES, **kw):
        d = Daemon(tls_listener(self.d, listener_extra) + body, **kw)
        self.addCleanup(d.kill)
        return d.start()

    def context(self, cert=None, ca="ca.pem"):
        ctx = ssl.create_default_context(cafile=self.path(ca))
        if cert:
            ctx.load_cert_chain(self.path(cert + ".pem"), self.path(cert + ".key"))
        return ctx

    def connect(self, d, ctx, host="localhost"):
        raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        return ctx.wrap_socket(raw, server_hostname=host)

    @staticmethod
    def post_on(s, body, close=False):
        """One request on an open TLS socket; (status, body)."""
        body = body.encode()
        s.sendall(b"POST /v1/trace HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json"
                  b"\r\nContent-Length: %d\r\n%s\r\n%s" %
                  (len(body), b"Connection: close\r\n" if close else b"", body))
        return TlsListenerTest.read_answer(s)

    @staticmethod
    def read_answer(s):
        """One answer; bytes of the next (pipelined) one stay for the next call."""
        buffered = TlsListenerTest.leftover.pop(id(s), b"")
        data = buffered
        while b"\r\n\r\n" not in data:
            chunk = s.recv(4096)
            if not chunk:
                raise ConnectionError("closed before the answer: %r" % data)
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        length = int(re.search(rb"(?i)content-length: (\d+)", head).group(1))
        while len(rest) < length:
            rest += s.recv(4096)
        if len(rest) > length:
            TlsListenerTest.leftover[id(s)] = rest[length:]
        return int(head.split()[1]), rest[:length].decode()

    def served_cert(self, d):
        with self.connect(d, self.context()) as s:
            return s.getpeercert(binary_form=True)

    def der(self, name):
        with open(self.path(name + ".pem")) as f:
            return ssl.PEM_cert_to_DER_cert(f.read())

    # ---- tests

    def test_https_with_curl_and_python(self):
        d = self.daemon()
        out = subprocess.run(
            ["curl", "-sS", "--cacert", self.path("ca.pem"), "-H", "Content-Type: application/json",
             "-d", FIX % 1, "-w", " %{http_code} %{http_version}",
             "https://localhost:%d/v1/trace" % d.port], capture_output=True, text=True, timeout=30)
        self.assertEqual(out.stdout, '{"accepted":1} 200 1.1', out.stderr)
        self.assertEqual(d.next_record()["device_id"], "d1")

        ctx = self.context()
        ctx.set_alpn_protocols(["h2", "http/1.1"])
        with self.connect(d, ctx) as s:
            self.assertEqual(s.selected_alpn_protocol(), "http/1.1")
            for i in (2, 3, 4):  # keep-alive: three requests on one connection
                self.assertEqual(self.post_on(s, FIX % i), (200, '{"accepted":1}'))
        self.assertEqual([d.next_record()["device_id"] for _ in range(3)], ["d2", "d3", "d4"])

        # Pipelined requests in one write, and a body many TLS records long:
        # plaintext left in the session while an answer is pending is served.
        big = "[" + ",".join(FIX % (100 + i) for i in range(8000)) + "]"
        with self.connect(d, self.context()) as s:
            reqs = b""
            for body in (FIX % 5, big, FIX % 6):
                b = body.encode()
                reqs += (b"POST /v1/trace HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                         b"application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(b), b))
            s.sendall(reqs)
            self.assertEqual([self.read_answer(s) for _ in range(3)],
                             [(200, '{"accepted":1}'), (200, '{"accepted":8000}'),
                              (200, '{"accepted":1}')])
        got = [d.next_record()["device_id"] for _ in range(8002)]
        self.assertEqual(got[0], "d5")
        self.assertEqual(got[-1], "d6")
        self.assertEqual(len(set(got)), 8002)
        self.assertEqual(d.stop(), 0)

    def test_close_notify_ends_a_closed_connection_and_the_session_resumes(self):
        # An answer that ends the connection (Connection: close, HTTP/1.0)
        # ends the TLS session with close_notify: read to EOF with ragged
        # EOFs refused, it is a clean end, and the session resumes.
        d = self.daemon()
        ctx = self.context()
        session = None
        for request in (b"GET /v1/trace HTTP/1.0\r\n\r\n",
                        b"POST /v1/trace HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                        b"application/json\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}"):
            raw = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            with ctx.wrap_socket(raw, server_hostname="localhost", session=session,
                                 suppress_ragged_eofs=False) as s:
                if session is not None:
                    self.assertTrue(s.session_reused)
                s.sendall(request)
                data = b""
                while True:
                    chunk = s.recv(4096)  # SSLEOFError on an EOF without close_notify
                    if not chunk:
                        break
                    data += chunk
                self.assertIn(b"Connection: close", data)
                session = s.session
        self.assertEqual(d.stop(), 0)

    def test_plain_http_and_random_bytes_are_closed_and_counted(self):
        # Junk that claims a long TLS record waits for the rest: the header
        # timeout ends it; other junk gets an alert at once.
        d = self.daemon('header_timeout = "500ms"\n')
        s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
        s.sendall(b"POST /v1/trace HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
        answer = b""
        while True:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        s.close()
        self.assertTrue(answer.startswith(b"HTTP/1.1 400 Bad Request\r\n"), answer)
        self.assertIn(b'{"error":"plain HTTP request sent to an HTTPS port"}', answer)

        for seed in range(5):
            junk = bytes((seed * 37 + i * 101) % 256 for i in range(700))
            junk = b"\x16\x03\x01" + junk if seed % 2 else b"\x00" + junk
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            try:
                s.sendall(junk)
                while s.recv(4096):  # an alert, then the close
                    pass
            except ConnectionResetError:
                pass
            finally:
                s.close()
        wait_for(lambda: (d.metric("ingestd_tls_handshake_errors_total", reason="handshake") or 0) +
                 (d.metric("ingestd_tls_handshake_errors_total", reason="timeout") or 0) == 5,
                 what="5 refusals counted")
        self.assertEqual(d.metric("ingestd_tls_handshake_errors_total", reason="plain_http"), 1)
        d.wait_log(r"listener public: TLS connection refused \(plain_http\)")
        # Still serving.
        with self.connect(d, self.context()) as s:
            self.assertEqual(self.post_on(s, FIX % 9), (200, '{"accepted":1}'))
        self.assertEqual(d.stop(), 0)

    def test_mutual_tls(self):
        d = self.daemon('tls_client_ca = "%s"\nclient_cert_field = "client"\n' %
                        self.path("ca.pem"))
        with self.connect(d, self.context(cert="client")) as s:
            self.assertEqual(self.post_on(s, FIX % 1), (200, '{"accepted":1}'))
        rec = d.next_record()
        self.assertEqual((rec["device_id"], rec["client"]), ("d1", "rider-app"))

        for cert in (None, "intruder"):
            with self.assertRaises((ssl.SSLError, ConnectionError), msg=cert):
                # TLS 1.3: the refusal may arrive with the first read.
                with self.connect(d, self.context(cert=cert)) as s:
                    self.post_on(s, FIX % 2)
        wait_for(lambda: d.metric("ingestd_tls_handshake_errors_total", reason="handshake") == 2,
                 what="both refusals counted")
        self.assertTrue(d.no_more_records())
        out = subprocess.run(["curl", "-sS", "--cacert", self.path("ca.pem"), "-d", FIX % 3,
                              "https://localhost:%d/v1/trace" % d.port],
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0, "curl without a client certificate was served")
        self.assertEqual(d.stop(), 0)

    def test_certificate_swap_on_sighup(self):
        d = self.daemon()
        self.assertEqual(self.served_cert(d), self.der("server-a"))
        # A connection that is half-way through a request when the reload comes.
        running = self.connect(d, self.context())
        self.addCleanup(running.close)
        body = (FIX % 1).encode()
        running.sendall(b"POST /v1/trace HTTP/1.1\r\nHost: localhost\r\nContent-Type: "
                        b"application/json\r\nContent-Length: %d\r\n\r\n%s" %
                        (len(body), body[:10]))

        self.install("server-b")
        d.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded")
        wait_for(lambda: self.served_cert(d) == self.der("server-b"),
                 what="new connections get the new certificate")
        running.sendall(body[10:])
        self.assertEqual(self.read_answer(running), (200, '{"accepted":1}'))
        self.assertEqual(running.getpeercert(binary_form=True), self.der("server-a"))

        # A key that does not match: refused with the reason, B keeps serving.
        self.install("server-a", key_of="server-b")
        d.signal(signal.SIGHUP)
        d.wait_log(r"tls_key \S+live\.key does not match tls_cert \S+live\.pem")
        d.wait_log(r"reload refused")
        self.assertEqual(self.served_cert(d), self.der("server-b"))
        os.unlink(os.path.join(self.d, "live.key"))
        d.signal(signal.SIGHUP)
        d.wait_log(r"tls_key \S+live\.key: No such file or directory")
        self.assertEqual(self.served_cert(d), self.der("server-b"))
        self.assertEqual(d.stop(), 0)

    def test_watch_config_reloads_a_changed_certificate(self):
        d = Daemon(tls_listener(self.d) + ROUTES)
        with open(d.config_path) as f:
            d.write_config(f.read().replace('log_level = "info"',
                                            'log_level = "info"\nwatch_config = true'))
        self.addCleanup(d.kill)
        d.start()
        self.assertEqual(self.served_cert(d), self.der("server-a"))
        self.install("server-b")
        wait_for(lambda: self.served_cert(d) == self.der("server-b"), timeout=30,
                 what="the certificate reloaded under watch_config")
        self.assertEqual(d.stop(), 0)

    def test_handshake_counts_against_header_timeout(self):
        d = self.daemon('header_timeout = "300ms"\n')
        for first in (b"", b"\x16\x03\x01\x02\x00\x01"):  # silent; a ClientHello cut short
            s = socket.create_connection(("127.0.0.1", d.port), timeout=10)
            s.sendall(first)
            self.assertEqual(s.recv(4096), b"", "the server closes the connection")
            s.close()
        wait_for(lambda: d.metric("ingestd_tls_handshake_errors_total", reason="timeout") == 2,
                 what="two handshake timeouts counted")
        self.assertEqual(d.stop(), 0)

    def test_min_version_13_refuses_a_tls12_client(self):
        d = self.daemon('tls_min_version = "1.3"\n')
        ctx = self.context()
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        with self.assertRaises(ssl.SSLError):
            self.connect(d, ctx).close()
        with self.connect(d, self.context()) as s:
            self.assertEqual(s.version(), "TLSv1.3")
        self.assertEqual(d.stop(), 0)

    def test_plain_and_tls_listeners_side_by_side(self):
        body = """
[listeners.plain]
listen = "127.0.0.1:0"

[inputs.trace_plain]
plugin = "trace"
listener = "plain"
path = "/v1/trace"
""" + ROUTES.replace('match = "trace"', 'match = "trace*"')
        d = self.daemon(body=body)
        plain_port = int(d.wait_log(r"listener plain: listening on 127\.0\.0\.1:(\d+)").group(1))
        self.assertEqual(d.post("/v1/trace", FIX % 1, port=plain_port)[0], 200)
        with self.connect(d, self.context()) as s:
            self.assertEqual(self.post_on(s, FIX % 2), (200, '{"accepted":1}'))
        got = sorted(d.next_record()["device_id"] for _ in range(2))
        self.assertEqual(got, ["d1", "d2"])
        self.assertEqual(d.stop(), 0)

    def test_check_config_names_a_missing_key(self):
        d = Daemon(tls_listener(self.d) + ROUTES)
        self.addCleanup(shutil.rmtree, d.dir, True)
        os.unlink(os.path.join(self.d, "live.key"))
        rc, _, err = run_ingestd(["-t", "-c", d.config_path, "--plugins-dir",
                                  os.environ.get("INGESTD_PLUGINS", "")])
        self.assertEqual(rc, 1, err)
        self.assertRegex(err, r"ingestd\.toml:\d+:\d+: listeners\.public: tls_key \S+live\.key: "
                              r"No such file or directory")
        with open(d.config_path) as f:
            d.write_config(f.read().replace("tls_key", "# tls_key"))
        rc, _, err = run_ingestd(["-t", "-c", d.config_path, "--plugins-dir",
                                  os.environ.get("INGESTD_PLUGINS", "")])
        self.assertEqual(rc, 1, err)
        self.assertIn("listeners.public: tls_cert and tls_key must be set together", err)


if __name__ == "__main__":
    unittest.main()
