"""The redis output over TLS (ElastiCache in-transit encryption) and on the
host's stream service, against a real redis-server built with TLS.

Each test starts its own redis-server with a TLS port only (`--port 0`), with
a CA and certificates made by the openssl CLI in a temporary directory, and
reads back what ingestd wrote with a RESP client over Python's ssl. Waits
poll with deadlines; every process is stopped by the test.
"""

import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import unittest

from harness import Daemon, run_ingestd, wait_for, PLUGINS
from needs import require_tool
from test_redis import Resp, RedisServer, config, free_port

SLOW_RESOLVER = os.environ.get("REDIS_SLOW_RESOLVER", "")


def openssl(*args, cwd):
    p = subprocess.run([require_tool("openssl")] + list(args), cwd=cwd, capture_output=True,
                       stdin=subprocess.DEVNULL, timeout=60)
    if p.returncode != 0:
        raise AssertionError("openssl %s failed: %s" % (" ".join(args), p.stderr.decode()))


class Pki:
    """Two CAs (the right one and a stranger), a server certificate for
    localhost / 127.0.0.1 and a client certificate, all signed by the first."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ingestd-redis-pki-")
        for ca in ("ca", "other-ca"):
            openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                    "-nodes", "-keyout", ca + ".key", "-out", ca + ".pem", "-days", "2",
                    "-subj", "/CN=ingestd test " + ca, cwd=self.dir)
        self._leaf("server", "localhost",
                   "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n")
        self._leaf("client", "ingestd-client", "extendedKeyUsage=clientAuth\n")

    def _leaf(self, name, cn, ext):
        with open(os.path.join(self.dir, name + ".ext"), "w") as f:
            f.write("basicConstraints=CA:FALSE\n" + ext)
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
                "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn,
                cwd=self.dir)
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                "-CAcreateserial", "-out", name + ".pem", "-days", "2", "-extfile",
                name + ".ext", cwd=self.dir)

    def path(self, name):
        return os.path.join(self.dir, name)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class TlsResp(Resp):
    """The RESP client of test_redis.py over TLS, checking the server as
    ingestd does."""

    def __init__(self, port, pki, client_cert=False, timeout=10):
        ctx = ssl.create_default_context(cafile=pki.path("ca.pem"))
        if client_cert:
            ctx.load_cert_chain(pki.path("client.pem"), pki.path("client.key"))
        raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        try:
            self.s = ctx.wrap_socket(raw, server_hostname="localhost")
        except Exception:
            raw.close()
            raise
        self.buf = b""


class TlsRedis(RedisServer):
    """A redis-server whose only TCP port speaks TLS (the unix socket stays,
    for the readiness check)."""

    def __init__(self, pki, auth_clients=False, extra=()):
        self.tls_port = free_port()
        self.pki = pki
        self.auth_clients = auth_clients
        args = ["--tls-port", str(self.tls_port),
                "--tls-cert-file", pki.path("server.pem"),
                "--tls-key-file", pki.path("server.key"),
                "--tls-ca-cert-file", pki.path("ca.pem"),
                "--tls-auth-clients", "yes" if auth_clients else "no"]
        super().__init__(tcp=False, extra=args + list(extra))

    def tls_client(self):
        c = TlsResp(self.tls_port, self.pki, client_cert=self.auth_clients)
        if self.user:
            c("AUTH", *self.user)
        return c


def tls_options(pki, **kw):
    opts = {"tls": "true", "ca_file": json.dumps(pki.path("ca.pem"))}
    opts.update(kw)
    return "\n".join("%s = %s" % (k, v) for k, v in opts.items() if v is not None)


class TlsTestCase(unittest.TestCase):
    auth_clients = False
    redis_args = ()

    @classmethod
    def setUpClass(cls):
        require_tool("openssl")
        cls.pki = Pki()
        cls.addClassCleanup(cls.pki.remove)

    def setUp(self):
        self.redis = TlsRedis(self.pki, auth_clients=self.auth_clients,
                              extra=self.redis_args).start()
        self.addCleanup(self.redis.stop)
        self.d = None

    @property
    def address(self):
        return "localhost:%d" % self.redis.tls_port

    def start_daemon(self, commands, extra, address=None, env=None):
        d = Daemon(config(address or self.address, commands, extra), env=env)
        self.addCleanup(shutil.rmtree, d.dir, True)
        d.start()
        self.d = d
        self.addCleanup(self.stop_daemon, d)
        return d

    def stop_daemon(self, d):
        if d.proc is not None and d.proc.poll() is None:
            self.assertEqual(d.stop(), 0, d.log_text())

    def post(self, records, d=None):
        status, body, _ = (d or self.d).post("/v1/trace", records)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["accepted"], len(records))

    def wait_keys(self, keys, timeout=60, client=None):
        """Every key of `keys` (name -> value) in redis, read over TLS."""
        c = client or self.redis.tls_client()
        try:
            keys = list(keys.items())

            missing = []

            def all_there():
                got = c("MGET", *[k for k, _ in keys])
                missing[:] = [k for g, (k, v) in zip(got, keys) if g != v]
                return not missing
            try:
                wait_for(all_there, timeout, "%d keys in redis" % len(keys), interval=0.05)
            except AssertionError as e:
                raise AssertionError("%s: %d missing (%s...); ingestd log:\n%s" % (
                    e, len(missing), missing[:3], self.d.log_text() if self.d else "")) from None
        finally:
            if client is None:
                c.close()


SET = [["SET", "rec:{id}", "{v}"]]


def records(lo, hi):
    return [{"id": i, "v": "value-%d" % i} for i in range(lo, hi)]


def expected(lo, hi):
    return {"rec:%d" % i: "value-%d" % i for i in range(lo, hi)}


class TlsDeliveryTest(TlsTestCase):
    def test_records_arrive_over_tls(self):
        d = self.start_daemon(SET, tls_options(self.pki))
        self.post(records(0, 100))
        self.wait_keys(expected(0, 100))
        d.wait_log(r"\[outputs\.pos\] connected to localhost:%d" % self.redis.tls_port)
        self.assertEqual(d.metric("ingestd_redis_connected", output="pos"), 1)
        self.assertNotRegex(d.log_text(), r"failed")

    def test_unix_socket_with_tls_is_refused(self):
        d = Daemon(config(self.redis.sock, SET, "tls = true"))
        self.addCleanup(shutil.rmtree, d.dir, True)
        code, _, err = run_ingestd(["-t", "-c", d.config_path, "--plugins-dir", PLUGINS])
        self.assertEqual(code, 1, err)
        self.assertRegex(err, r"tls = true needs a TCP address .*redis\.sock.* is a unix socket")

    def test_check_names_a_missing_ca_file(self):
        missing = os.path.join(self.pki.dir, "no-such-ca.pem")
        d = Daemon(config(self.address, SET, 'tls = true\nca_file = "%s"' % missing))
        self.addCleanup(shutil.rmtree, d.dir, True)
        code, _, err = run_ingestd(["-t", "-c", d.config_path, "--plugins-dir", PLUGINS])
        self.assertEqual(code, 1, err)
        self.assertIn(missing, err)
        ok = Daemon(config(self.address, SET, tls_options(self.pki)))
        self.addCleanup(shutil.rmtree, ok.dir, True)
        code, _, err = run_ingestd(["-t", "-c", ok.config_path, "--plugins-dir", PLUGINS])
        self.assertEqual(code, 0, err)


class TlsRestartTest(TlsTestCase):
    # Acknowledged writes survive the restart: the AOF is fsynced before
    # redis replies.
    redis_args = ("--appendonly", "yes", "--appendfsync", "always")

    def test_server_restarted_on_the_same_port_loses_nothing(self):
        d = self.start_daemon(SET, tls_options(self.pki))
        self.post(records(0, 500))
        self.wait_keys(expected(0, 500))
        self.redis.halt()
        d.wait_log(r"connection to localhost:\d+ lost")
        # The queue holds what arrives meanwhile: answered 200.
        for lo in range(500, 1000, 100):
            self.post(records(lo, lo + 100))
        d.wait_log(r"connect to localhost:\d+ failed: .*; retrying in \d+ ms")
        self.redis.start()
        self.wait_keys(expected(0, 1000))
        self.assertGreaterEqual(d.metric("ingestd_redis_reconnects_total", output="pos"), 1)
        self.assertEqual(d.metric("ingestd_output_dead_letter_records_total", output="pos"), 0)


class TlsRefusedTest(TlsTestCase):
    def test_wrong_ca_is_refused_logged_and_nothing_lost_after_reload(self):
        wrong = self.pki.path("other-ca.pem")
        # On disk: a reload gives the old generation's memory queue only
        # shutdown_timeout to drain, while a disk log is adopted by the new one.
        d = self.start_daemon(SET, tls_options(self.pki, ca_file=json.dumps(wrong),
                                               buffer='"disk"'))
        self.post(records(0, 200))
        d.wait_log(r"\[outputs\.pos\] connect to localhost:%d failed: TLS: certificate verify "
                   r"failed: .*; retrying in \d+ ms" % self.redis.tls_port)
        # Retried with backoff, and logged once, not once per attempt.
        wait_for(lambda: (d.metric("ingestd_redis_reconnects_total", output="pos") or 0) >= 3,
                 30, "three reconnects")
        self.assertEqual(len(re.findall(r"connect to .* failed", d.log_text())), 1, d.log_text())
        c = self.redis.tls_client()
        self.addCleanup(c.close)
        self.assertEqual(c("DBSIZE"), 0)
        # Fixed by a reload: everything acknowledged arrives.
        with open(d.config_path) as f:
            text = f.read()
        d.write_config(text.replace(wrong, self.pki.path("ca.pem")))
        d.signal(signal.SIGHUP)
        d.wait_log(r"configuration reloaded")
        self.post(records(200, 300))
        self.wait_keys(expected(0, 300), client=c)

    def test_wrong_server_name_is_refused_and_tls_verify_false_accepts(self):
        d = self.start_daemon(SET, tls_options(self.pki, tls_server_name='"wrong.example"'))
        self.post(records(0, 10))
        d.wait_log(r"connect to localhost:\d+ failed: TLS: certificate verify failed")
        self.assertRegex(d.log_text(), r"(?i)hostname mismatch|wrong\.example")
        c = self.redis.tls_client()
        self.addCleanup(c.close)
        self.assertEqual(c("DBSIZE"), 0)
        d.stop()
        # tls_verify = false accepts any certificate (here a stranger's CA and
        # the wrong name together).
        self.start_daemon(SET, tls_options(self.pki, ca_file=json.dumps(self.pki.path(
            "other-ca.pem")), tls_server_name='"wrong.example"', tls_verify="false"))
        self.post(records(10, 20))
        self.wait_keys(expected(10, 20), client=c)


class MutualTlsTest(TlsTestCase):
    auth_clients = True

    def test_client_certificate(self):
        d = self.start_daemon(SET, tls_options(self.pki))
        self.post(records(0, 5))
        # Without a certificate the server ends the handshake.
        d.wait_log(r"connect to localhost:\d+ failed: ")
        d.stop()
        self.start_daemon(SET, tls_options(self.pki,
                                           client_cert=json.dumps(self.pki.path("client.pem")),
                                           client_key=json.dumps(self.pki.path("client.key"))))
        self.post(records(5, 50))
        self.wait_keys(expected(5, 50))

    def test_acl_user_with_password_over_tls(self):
        # ElastiCache RBAC: a user and password over TLS.
        admin = self.redis.tls_client()
        admin("ACL", "SETUSER", "admin", "on", ">adminpw", "~*", "&*", "+@all")
        admin("ACL", "SETUSER", "ingest", "on", ">s3cret", "~rec:*", "+set", "+ping")
        admin("ACL", "SETUSER", "default", "off")
        admin.close()
        self.redis.user = ("admin", "adminpw")
        d = self.start_daemon(SET, tls_options(
            self.pki, client_cert=json.dumps(self.pki.path("client.pem")),
            client_key=json.dumps(self.pki.path("client.key")),
            username='"ingest"', password='"s3cret"'))
        self.post(records(0, 20))
        self.wait_keys(expected(0, 20))
        self.assertNotIn("s3cret", d.log_text())


class SlowResolverTest(TlsTestCase):
    def test_slow_dns_does_not_hold_up_requests(self):
        if not SLOW_RESOLVER or not os.path.exists(SLOW_RESOLVER):
            raise AssertionError("REDIS_SLOW_RESOLVER names no built shim (%r): run the test "
                                 "through ctest" % SLOW_RESOLVER)
        tmp = tempfile.mkdtemp(prefix="ingestd-slow-dns-")
        self.addCleanup(shutil.rmtree, tmp, True)
        gate = os.path.join(tmp, "gate")
        waiting = os.path.join(tmp, "waiting")
        # Opened last thing: a failing test must not leave a lookup blocked.
        self.addCleanup(lambda: open(gate, "w").close())
        env = dict(os.environ)
        env["LD_PRELOAD"] = SLOW_RESOLVER
        env["SLOW_RESOLVER_GATE"] = gate
        env["SLOW_RESOLVER_WAITING"] = waiting
        # The sanitizer runtime wants to be first; the shim is not instrumented.
        env["ASAN_OPTIONS"] = ":".join(filter(None, [env.get("ASAN_OPTIONS", ""),
                                                     "verify_asan_link_order=0"]))
        # One lookup in flight for the whole test: connect_timeout outlasts it.
        d = self.start_daemon(SET, tls_options(self.pki, tls_server_name='"localhost"',
                                               connect_timeout='"120s"'),
                              address="slow-redis.test:%d" % self.redis.tls_port, env=env)
        wait_for(lambda: os.path.exists(waiting), 30, "the resolver to be asked")
        # The lookup is blocked: requests on the same (only) worker are still
        # answered, and queued.
        for lo in range(0, 100, 10):
            self.post(records(lo, lo + 10))
        self.assertEqual(d.admin_get("/healthz")[0], 200)
        self.assertFalse(os.path.exists(gate))
        c = self.redis.tls_client()
        self.addCleanup(c.close)
        self.assertEqual(c("DBSIZE"), 0)
        open(gate, "w").close()
        self.wait_keys(expected(0, 100), client=c)
        self.post(records(100, 110))
        self.wait_keys(expected(0, 110), client=c)


if __name__ == "__main__":
    unittest.main()
