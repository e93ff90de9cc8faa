"""A disk buffer whose file system fills before max_disk (issue 14, defect 7).

storage_dir is a small tmpfs mounted by the test (we run as root in CI; a
failed mount fails the test under CI=true), the output is a real
redis-server that the test stops and starts. With Redis down the phones get
503 once the tmpfs is full; once Redis is back and has every acknowledged
record, the space must be given back and a large request answered 200 again,
and the episode must be logged once, not once per refused request. Every wait
polls a condition with a deadline.
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from harness import Daemon, PLUGINS, run_ingestd, wait_for

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
TMPFS_SIZE = 8 << 20

CONFIG = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[outputs.pos]
plugin = "redis"
address = "{sock}"
commands = [["SET", "rec:{{id}}", "{{n}}"]]
buffer = "disk"
max_disk = "1GiB"
flush_interval = "5ms"
retry_initial = "20ms"
retry_max = "200ms"

[[routes]]
match = "trace"
to = ["pos"]
"""

NO_SPACE = "no space left on device: requests get 503 until space is freed"
WRITABLE = r"writable again after (\d+) requests were refused for lack of space"


class Resp:
    """Just enough RESP2 to count and read back keys over a unix socket."""

    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(10)
        try:
            self.s.connect(path)
        except OSError:
            self.s.close()
            raise
        self.buf = b""

    def close(self):
        self.s.close()

    def _line(self):
        while b"\r\n" not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise ConnectionError("redis closed the connection")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _reply(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t in (b"+", b"-"):
            return rest.decode()
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) < n + 2:
                chunk = self.s.recv(65536)
                if not chunk:
                    raise ConnectionError("redis closed the connection")
                self.buf += chunk
            data, self.buf = self.buf[:n], self.buf[n + 2:]
            return data.decode()
        if t == b"*":
            return [self._reply() for _ in range(int(rest))]
        raise ValueError("bad RESP line %r" % line)

    def __call__(self, *args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        self.s.sendall(b"".join(out))
        return self._reply()


class Redis:
    """A redis-server on a unix socket in its own directory (not on the tmpfs)."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="ingestd-redis-")
        self.sock = os.path.join(self.dir, "redis.sock")
        self.proc = None

    def start(self):
        if not os.path.exists(REDIS_SERVER):
            raise AssertionError("redis-server not found: install the Debian package redis-server")
        self.proc = subprocess.Popen(
            [REDIS_SERVER, "--port", "0", "--unixsocket", self.sock, "--unixsocketperm", "700",
             "--dir", self.dir, "--save", "", "--appendonly", "no", "--daemonize", "no",
             "--logfile", os.path.join(self.dir, "redis.log")],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

        def pong():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server exited")
            try:
                c = Resp(self.sock)
            except OSError:
                return False
            try:
                return c("PING") == "PONG"
            finally:
                c.close()
        wait_for(pong, 20, "redis-server to answer PING")
        return self

    def keys_present(self, ids):
        """How many of rec:<id> for ids exist."""
        c = Resp(self.sock)
        try:
            found = 0
            ids = list(ids)
            for i in range(0, len(ids), 500):
                found += c("EXISTS", *["rec:" + x for x in ids[i:i + 500]])
            return found
        finally:
            c.close()

    def dbsize(self):
        try:
            c = Resp(self.sock)
        except OSError:
            return -1
        try:
            return c("DBSIZE")
        finally:
            c.close()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def mount_tmpfs(test, path):
    """Mounts an 8 MiB tmpfs on path, unmounted by the test's cleanup."""
    os.makedirs(path, exist_ok=True)
    p = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%d" % TMPFS_SIZE, "tmpfs", path],
                       capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if p.returncode != 0:
        why = "cannot mount a tmpfs on %s: %s" % (path, p.stderr.strip())
        if os.environ.get("CI") == "true":
            test.fail(why)
        test.skipTest(why + " (needs root; required under CI=true)")

    def umount():
        r = subprocess.run(["umount", path], capture_output=True, text=True)
        if r.returncode != 0:  # still busy: detach it, and say so
            subprocess.run(["umount", "-l", path], capture_output=True)
            raise AssertionError("umount %s: %s" % (path, r.stderr.strip()))
    test.addCleanup(umount)


def free_bytes(path):
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def batch(first, count):
    # Same size for every request: once one does not fit, none does.
    return [{"id": "r-%08d" % (first + i), "n": first + i, "pad": "x" * 1000}
            for i in range(count)]


class DiskFullTest(unittest.TestCase):
    def setUp(self):
        self.redis = Redis()
        self.addCleanup(self.redis.stop)
        self.d = Daemon(CONFIG.format(sock=self.redis.sock))
        self.addCleanup(shutil.rmtree, self.d.dir, True)
        self.state = os.path.join(self.d.dir, "state")
        mount_tmpfs(self, self.state)
        self.addCleanup(self.d.kill)  # before the umount (cleanups run last first)

    def test_check_config_warns_when_max_disk_exceeds_the_free_space(self):
        code, _, err = run_ingestd(["-t", "-c", self.d.config_path, "--plugins-dir", PLUGINS])
        self.assertEqual(code, 0, err)
        self.assertRegex(err, r"max_disk 1 GiB of output 'pos' exceeds the [\d.]+ (KiB|MiB) free "
                              r"on the file system of " + re.escape(self.state))
        self.assertIn("is valid", err)

    def test_space_is_given_back_once_every_acknowledged_record_is_delivered(self):
        d = self.d
        d.start()

        # Redis is down: fill the tmpfs until the requests get 503.
        acked, refused, n, consecutive = set(), 0, 0, 0
        while consecutive < 10:
            self.assertLess(n, 200000, "the tmpfs never filled")
            recs = batch(n, 50)
            n += len(recs)
            status, body, _ = d.post("/v1/trace", recs)
            if status == 200:
                consecutive = 0
                acked.update(r["id"] for r in recs)
            else:
                self.assertEqual(status, 503, body)
                self.assertIn("no space left on device", body.lower())
                refused += 1
                consecutive += 1
        self.assertGreater(len(acked), 1000)
        self.assertLess(free_bytes(self.state), 64 << 10)

        # Redis is back: every acknowledged record arrives…
        self.redis.start()
        wait_for(lambda: self.redis.dbsize() >= len(acked), 60, "delivery of %d records" % len(acked))
        self.assertEqual(self.redis.keys_present(acked), len(acked))
        # …and the space it held is given back without waiting for a write.
        try:
            wait_for(lambda: free_bytes(self.state) > TMPFS_SIZE // 2, 20, "space on the tmpfs")
            space_back = True
        except AssertionError:
            space_back = False

        # A large request (~400 KiB) is accepted again and delivered.
        big = batch(n, 400)
        status, body, _ = d.post("/v1/trace", big)
        self.assertEqual(status, 200, "after every record was delivered: %s (%d bytes free on "
                                      "the tmpfs)" % (body, free_bytes(self.state)))
        self.assertTrue(space_back, "the space came back only with a write")
        big_ids = [r["id"] for r in big]
        wait_for(lambda: self.redis.keys_present(big_ids) == len(big_ids), 30,
                 "delivery of the large request")

        # One line when the episode began, one when it ended, with the count.
        m = d.wait_log(WRITABLE)
        self.assertEqual(int(m.group(1)), refused)
        log = d.log_text()
        self.assertEqual(log.count(NO_SPACE), 1, log[-3000:])
        self.assertEqual(len(re.findall(WRITABLE, log)), 1, log[-3000:])
        # The start warned of it (a warning: the daemon ran).
        self.assertRegex(log, r"max_disk 1 GiB of output 'pos' exceeds the 8 MiB free on the "
                              r"file system of " + re.escape(self.state))
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
