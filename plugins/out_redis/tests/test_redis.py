"""The redis output against a real redis-server that each test starts itself.

Every test runs its own redis-server (no RDB snapshots, a unix socket in a
temporary directory, TCP only where a test needs it) and reads back what
ingestd wrote with a small RESP client. Waits poll with deadlines.
"""

import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import unittest

from harness import Daemon, run_ingestd, wait_for, PLUGINS

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RespError(Exception):
    pass


class Resp:
    """A minimal RESP2 client: enough to read back and to set up ACLs."""

    def __init__(self, unix=None, port=None, timeout=10):
        if unix:
            self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.s.settimeout(timeout)
            try:
                self.s.connect(unix)
            except OSError:
                self.s.close()
                raise
        else:
            self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = b""

    def close(self):
        self.s.close()

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = a if isinstance(a, bytes) else str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n):
        while len(self.buf) < n + 2:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2:]
        return data

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode()
        if t == b"*":
            n = int(rest)
            return None if n < 0 else [self._reply() for _ in range(n)]
        raise ValueError("bad RESP line %r" % line)

    def pipeline(self, commands):
        self.s.sendall(b"".join(self.encode(c) for c in commands))
        return [self._reply() for _ in commands]

    def __call__(self, *args):
        r = self.pipeline([args])[0]
        if isinstance(r, RespError):
            raise r
        return r


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_log(directory):
    """The end of the redis.log a server in `directory` wrote, for messages."""
    try:
        with open(os.path.join(directory, "redis.log")) as f:
            return f.read()[-3000:]
    except OSError:
        return ""


class RedisServer:
    """One redis-server in its own directory, stopped by the test."""

    def __init__(self, tcp=False, extra=()):
        self.dir = tempfile.mkdtemp(prefix="ingestd-redis-")
        self.sock = os.path.join(self.dir, "redis.sock")
        self.port = free_port() if tcp else 0
        self.extra = list(extra)
        self.proc = None
        self.user = None  # (name, password) the test client authenticates with

    def start(self):
        if not os.path.exists(REDIS_SERVER):
            raise AssertionError("redis-server not found: install the Debian package redis-server")
        args = [REDIS_SERVER, "--port", str(self.port), "--bind", "127.0.0.1",
                "--unixsocket", self.sock, "--unixsocketperm", "700", "--dir", self.dir,
                "--save", "", "--appendonly", "no", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")] + self.extra
        self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL)

        def pong():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited: " + self.log())
            try:
                c = self.client()
            except OSError:
                return False
            try:
                return c("PING") == "PONG"
            except (OSError, RespError):
                return False
            finally:
                c.close()
        wait_for(pong, 20, "redis-server to answer PING")
        return self

    def log(self):
        return redis_log(self.dir)

    def client(self):
        c = Resp(unix=self.sock)
        if self.user:
            c("AUTH", *self.user)
        return c

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait()

    def halt(self):
        """Stops the server but keeps its directory (and AOF) for a restart."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()

    def stop(self):
        self.halt()
        shutil.rmtree(self.dir, ignore_errors=True)


def config(address, commands, extra=""):
    return """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[outputs.pos]
plugin = "redis"
address = "%s"
commands = %s
flush_interval = "5ms"
retry_initial = "20ms"
retry_max = "500ms"
%s

[[routes]]
match = "trace"
to = ["pos"]
""" % (address, json.dumps(commands), extra)


class RedisTestCase(unittest.TestCase):
    redis_args = ()
    tcp = False

    def setUp(self):
        self.redis = RedisServer(tcp=self.tcp, extra=self.redis_args).start()
        self.addCleanup(self.redis.stop)
        self.r = self.redis.client()
        self.addCleanup(self.r.close)
        self.d = None

    def start_daemon(self, commands, extra="", address=None):
        self.d = Daemon(config(address or self.redis.sock, commands, extra))
        self.d.start()
        self.addCleanup(self.stop_daemon)
        return self.d

    def stop_daemon(self):
        if self.d is not None:
            d, self.d = self.d, None
            self.assertEqual(d.stop(), 0, d.log_text())

    def post(self, records):
        status, body, _ = self.d.post("/v1/trace", records)
        self.assertEqual(status, 200, body)
        self.assertEqual(json.loads(body)["accepted"], len(records))

    def delivered(self, n, timeout=30):
        wait_for(lambda: (self.d.metric("ingestd_output_records_total", output="pos") or 0) >= n,
                 timeout, "%d records delivered" % n)

    def dead_letters(self, n, timeout=20):
        path = os.path.join(self.d.dir, "state", "dead-letter.ndjson")

        def read():
            try:
                with open(path) as f:
                    lines = [json.loads(l) for l in f if l.strip()]
            except OSError:
                return None
            return lines if len(lines) >= n else None
        return wait_for(read, timeout, "%d dead letters" % n)


POSITION_COMMANDS = [["GEOADD", "riders", "{lon}", "{lat}", "{device_id}"],
                     ["HSET", "rider:{device_id}", "lat", "{lat}", "lon", "{lon}", "ts", "{ts}",
                      "speed", "{speed}", "meta", "{meta}", "raw", "{_json}", "nested",
                      "{meta.app}", "on", "{moving}"]]


class PositionsTest(RedisTestCase):
    tcp = True

    def test_positions_readable_exactly_as_sent_and_metrics(self):
        d = self.start_daemon(POSITION_COMMANDS, address="127.0.0.1:%d" % self.redis.port)
        # Raw JSON text: the numbers must arrive exactly as written here.
        body = ('[{"device_id": "rider-1", "lat": 37.566535123456789, "lon": 126.97800000000001,'
                ' "ts": 1700000000123, "speed": 1e-7, "meta": {"app": "7.1", "n": [1, 2.50]},'
                ' "moving": true},'
                ' {"device_id": "rider-2", "lat": -33.8688, "lon": 151.2093,'
                ' "ts": 18446744073709551615, "speed": 0, "meta": {"app": "x"}, "moving": false}]')
        status, text, _ = d.post("/v1/trace", body)
        self.assertEqual(status, 200, text)
        self.delivered(2)
        h = dict(zip(*[iter(self.r("HGETALL", "rider:rider-1"))] * 2))
        # Numbers are the exact text the phone sent, not a double's rendering.
        self.assertEqual(h["lat"], "37.566535123456789")
        self.assertEqual(h["lon"], "126.97800000000001")
        self.assertEqual(h["ts"], "1700000000123")
        self.assertEqual(h["speed"], "1e-7")
        self.assertEqual(json.loads(h["meta"]), {"app": "7.1", "n": [1, 2.5]})
        self.assertEqual(h["nested"], "7.1")
        self.assertEqual(h["on"], "true")
        self.assertEqual(json.loads(h["raw"])["device_id"], "rider-1")
        h2 = dict(zip(*[iter(self.r("HGETALL", "rider:rider-2"))] * 2))
        self.assertEqual(h2["ts"], "18446744073709551615")
        self.assertEqual(h2["on"], "false")
        pos = self.r("GEOPOS", "riders", "rider-1", "rider-2")
        self.assertAlmostEqual(float(pos[0][0]), 126.978, places=5)
        self.assertAlmostEqual(float(pos[0][1]), 37.566535, places=5)
        self.assertAlmostEqual(float(pos[1][0]), 151.2093, places=5)
        self.assertAlmostEqual(float(pos[1][1]), -33.8688, places=5)
        m = lambda name: d.metric(name, output="pos")
        self.assertEqual(m("ingestd_redis_commands_sent_total"), 4)
        self.assertEqual(m("ingestd_redis_replies_ok_total"), 4)
        self.assertEqual(m("ingestd_redis_replies_error_total"), 0)
        self.assertEqual(m("ingestd_redis_replies_nil_total"), 0)
        self.assertEqual(m("ingestd_redis_inflight_commands"), 0)
        self.assertEqual(m("ingestd_redis_connected"), 1)
        self.assertEqual(m("ingestd_redis_reconnects_total"), 0)
        self.assertEqual(m("ingestd_redis_dead_letter_records_total"), 0)
        self.assertIsNotNone(m("ingestd_redis_waiting_batches"))

    def test_ttl_and_key_prefix(self):
        self.start_daemon([["SET", "last:{id}", "{v}"], ["GEOADD", "g", "1", "2", "{id}"]],
                          extra='ttl = "90s"\nkey_prefix = "app1:"',
                          address="127.0.0.1:%d" % self.redis.port)
        self.post([{"id": "a", "v": 1}, {"id": "b", "v": 2}])
        self.delivered(2)
        self.assertEqual(self.r("GET", "app1:last:a"), "1")
        for key in ("app1:last:a", "app1:last:b", "app1:g"):
            ttl = self.r("TTL", key)
            self.assertTrue(80 <= ttl <= 90, (key, ttl))


class AclTest(RedisTestCase):
    def test_auth_with_acl_user_and_noperm_goes_to_dead_letter(self):
        self.r("ACL", "SETUSER", "admin", "on", ">adminpw", "~*", "&*", "+@all")
        self.r("ACL", "SETUSER", "ingest", "on", ">s3cret", "~rider:*", "+hset", "+ping")
        self.r("ACL", "SETUSER", "default", "off")
        self.redis.user = ("admin", "adminpw")
        self.r.close()
        self.r = self.redis.client()
        self.start_daemon([["HSET", "{key}", "lat", "{lat}"]],
                          extra='username = "ingest"\npassword = "s3cret"')
        self.post([{"key": "rider:1", "lat": 1.25}, {"key": "other:1", "lat": 2},
                   {"key": "rider:2", "lat": 3}])
        self.delivered(2)
        self.assertEqual(self.r("HGET", "rider:1", "lat"), "1.25")
        self.assertEqual(self.r("HGET", "rider:2", "lat"), "3")
        dl = self.dead_letters(1)
        self.assertEqual(dl[0]["record"]["key"], "other:1")
        self.assertRegex(dl[0]["reason"], r"^commands\[0\] HSET: NOPERM ")
        self.assertNotIn("s3cret", self.d.log_text())

    def test_wrong_password_is_logged_and_records_wait(self):
        self.r("ACL", "SETUSER", "ingest", "on", ">s3cret", "~*", "+@all")
        self.start_daemon([["SET", "k", "{v}"]], extra='username = "ingest"\npassword = "nope"')
        self.post([{"v": 1}])
        self.d.wait_log(r"AUTH failed: WRONGPASS")
        self.assertEqual(self.d.log_text().count("AUTH failed"), 1, self.d.log_text())
        self.assertIsNone(self.r("GET", "k"))
        self.assertEqual(self.d.metric("ingestd_output_records_total", output="pos"), 0)


class IfNewerTest(RedisTestCase):
    def test_shuffled_positions_end_with_the_newest_per_device(self):
        d = self.start_daemon(
            [["GEOADD", "riders", "{lon}", "{lat}", "{device_id}"],
             ["HSET", "rider:{device_id}", "lat", "{lat}", "lon", "{lon}", "ts", "{ts}"]],
            extra='if_newer = "ts"\nif_newer_key = "rider:{device_id}:ts"\nttl = "1h"\n'
                  'batch_max_records = 150')
        rng = random.Random(4)
        devices, per_device = 200, 20
        records = []
        for dev in range(devices):
            for k in range(per_device):
                records.append({"device_id": "d%d" % dev, "ts": 1700000000000 + k * 1000,
                                "lat": round(10 + dev * 0.01 + k * 0.001, 6),
                                "lon": round(20 + dev * 0.01 + k * 0.001, 6)})
        rng.shuffle(records)
        half = len(records) // 2
        for i in range(0, half, 250):
            self.post(records[i:i + 250])
        self.delivered(half)
        # Redis forgets its scripts (as after a restart or failover): EVALSHA
        # answers NOSCRIPT and the output resends the script.
        self.r("SCRIPT", "FLUSH")
        for i in range(half, len(records), 250):
            self.post(records[i:i + 250])
        self.delivered(len(records))
        newest = {}
        for rec in records:
            cur = newest.get(rec["device_id"])
            if cur is None or rec["ts"] > cur["ts"]:
                newest[rec["device_id"]] = rec
        cmds = []
        for dev, rec in sorted(newest.items()):
            cmds.append(("HMGET", "rider:" + dev, "ts", "lat", "lon"))
            cmds.append(("GEOPOS", "riders", dev))
            cmds.append(("GET", "rider:%s:ts" % dev))
        replies = self.r.pipeline(cmds)
        for i, (dev, rec) in enumerate(sorted(newest.items())):
            h, pos, guard = replies[3 * i:3 * i + 3]
            self.assertEqual(h, [str(rec["ts"]), repr(rec["lat"]), repr(rec["lon"])], dev)
            self.assertAlmostEqual(float(pos[0][0]), rec["lon"], places=5)
            self.assertAlmostEqual(float(pos[0][1]), rec["lat"], places=5)
            self.assertEqual(guard, str(rec["ts"]))
        self.assertTrue(0 < self.r("TTL", "rider:d7") <= 3600)
        self.assertTrue(0 < self.r("TTL", "rider:d7:ts") <= 3600)
        self.assertGreater(d.metric("ingestd_redis_script_reloads_total", output="pos"), 0)
        self.assertEqual(d.metric("ingestd_output_dead_letter_records_total", output="pos"), 0)

    def test_if_newer_without_key_fails_the_check_unless_a_key_names_a_field(self):
        self._check_fails([["GEOADD", "riders", "{lon}", "{lat}", "{id}"]], 'if_newer = "ts"',
                          r"if_newer needs if_newer_key")
        self._check_fails([["SET", "a:{id}", "{v}"]], 'if_newer = "ts"\nif_newer_key = "x:{id"',
                          r"if_newer_key: unclosed '\{' in \"x:\{id\"")

    def test_default_if_newer_key(self):
        self.start_daemon([["GEOADD", "riders", "{lon}", "{lat}", "{id}"],
                           ["HSET", "rider:{id}", "ts", "{ts}"]], extra='if_newer = "ts"')
        self.post([{"id": "a", "lon": 1, "lat": 2, "ts": 5}, {"id": "a", "lon": 3, "lat": 4, "ts": 4}])
        self.delivered(2)
        self.assertEqual(self.r("GET", "rider:a:if_newer"), "5")
        self.assertEqual(self.r("HGET", "rider:a", "ts"), "5")

    def _check_fails(self, commands, extra, pattern):
        d = Daemon(config(self.redis.sock, commands, extra))
        code, _, err = run_ingestd(["-t", "-c", d.config_path, "--plugins-dir", PLUGINS])
        self.assertEqual(code, 1, err)
        self.assertRegex(err, pattern)
        return err


class TemplateCheckTest(unittest.TestCase):
    def test_malformed_template_fails_check_with_its_position(self):
        d = Daemon(config("/nonexistent/redis.sock",
                          [["GEOADD", "riders", "{lon}", "{lat}", "{device_id}"],
                           ["HSET", "rider:{device_id", "lat", "{lat}"]]))
        code, _, err = run_ingestd(["-t", "-c", d.config_path, "--plugins-dir", PLUGINS])
        self.assertEqual(code, 1, err)
        self.assertRegex(err, re.escape(d.config_path) + r":\d+:\d+: .*"
                         + r"commands\[1\]\[1\]: unclosed '\{' in \"rider:\{device_id\"")
        ok = Daemon(config("/nonexistent/redis.sock", POSITION_COMMANDS))
        code, _, err = run_ingestd(["-t", "-c", ok.config_path, "--plugins-dir", PLUGINS])
        self.assertEqual(code, 0, err)


class ErrorsTest(RedisTestCase):
    def test_wrongtype_and_missing_field_go_to_dead_letter_rest_of_batch_lands(self):
        self.r("SET", "rider:bad", "a string")
        d = self.start_daemon([["HSET", "rider:{device_id}", "lat", "{lat}"]])
        self.post([{"device_id": "d1", "lat": 1.5}, {"device_id": "bad", "lat": 2.5},
                   {"device_id": "nolat"}, {"device_id": "d2", "lat": 3.5}])
        dl = sorted(self.dead_letters(2), key=lambda x: x["record"]["device_id"])
        self.assertEqual([x["output"] for x in dl], ["pos", "pos"])
        self.assertEqual(dl[0]["record"], {"device_id": "bad", "lat": 2.5})
        self.assertEqual(dl[0]["reason"], "commands[0] HSET: WRONGTYPE Operation against a key "
                                          "holding the wrong kind of value")
        self.assertEqual(dl[1]["record"], {"device_id": "nolat"})
        self.assertEqual(dl[1]["reason"],
                         "template commands[0] needs field 'lat', the record has none")
        self.delivered(2)
        self.assertEqual(self.r("HGET", "rider:d1", "lat"), "1.5")
        self.assertEqual(self.r("HGET", "rider:d2", "lat"), "3.5")
        self.assertEqual(d.metric("ingestd_redis_dead_letter_records_total", output="pos"), 2)
        self.assertEqual(d.metric("ingestd_output_dead_letter_records_total", output="pos"), 2)
        self.assertEqual(d.metric("ingestd_redis_replies_error_total", output="pos"), 1)

    def test_records_wait_while_redis_is_down_and_land_when_it_starts(self):
        self.redis.kill()
        self.start_daemon([["SET", "k:{i}", "{i}"]])
        self.post([{"i": i} for i in range(50)])
        self.d.wait_log(r"connect to .*redis\.sock failed: .*; retrying in \d+ ms")
        self.redis.start()
        self.delivered(50)
        c = self.redis.client()
        self.addCleanup(c.close)
        self.assertEqual(c("DBSIZE"), 50)
        # Rate-limited: one line for the outage, not one per attempt.
        self.assertEqual(len(re.findall(r"connect to .* failed", self.d.log_text())), 1,
                         self.d.log_text())
        self.d.wait_log(r"connected to .*redis\.sock")


class RestartTest(RedisTestCase):
    # Acknowledged writes must survive SIGKILL for "every record's effect"
    # to be checkable: the AOF is fsynced before Redis replies.
    redis_args = ("--appendonly", "yes", "--appendfsync", "always")

    def test_redis_killed_mid_stream_and_restarted_loses_nothing(self):
        d = self.start_daemon([["SET", "rec:{id}", "{id}"]])
        total, per_post = 20000, 200
        errors = []

        def sender():
            try:
                for i in range(0, total, per_post):
                    self.post([{"id": n} for n in range(i, i + per_post)])
            except Exception as e:  # reported by the main thread
                errors.append(e)
        t = threading.Thread(target=sender)
        t.start()
        wait_for(lambda: self.r("DBSIZE") >= 3000, 60, "some records in redis")
        self.r.close()
        self.redis.kill()
        d.wait_log(r"connection to .* lost")
        self.redis.start()
        self.r = self.redis.client()
        t.join(120)
        self.assertFalse(errors, errors)
        wait_for(lambda: self.r("DBSIZE") >= total, 60, "all records in redis")
        keys = ["rec:%d" % n for n in range(total)]
        values = []
        for i in range(0, total, 1000):
            values += self.r("MGET", *keys[i:i + 1000])
        missing = [k for k, v in zip(keys, values) if v != k[4:]]
        self.assertEqual(missing, [])
        self.delivered(total)
        self.assertGreaterEqual(d.metric("ingestd_redis_reconnects_total", output="pos"), 1)
        self.assertEqual(d.metric("ingestd_output_dead_letter_records_total", output="pos"), 0)
        self.assertEqual(d.log_text().count("connection to"), 1, d.log_text())


if __name__ == "__main__":
    unittest.main()
