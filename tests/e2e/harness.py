"""Starts the real ingestd for a test and talks to it.

Every daemon gets a fresh temporary directory, listens on port 0 (the kernel
picks a free port; the daemon logs it) and is stopped by the test. Nothing
here sleeps and hopes: every wait polls a condition with a deadline.
"""

import http.client
import json
import os
import queue
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BIN = os.environ.get("INGESTD_BIN", "ingestd")
PLUGINS = os.environ.get("INGESTD_PLUGINS", "")
SOURCE = os.environ.get("INGESTD_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))


def wait_for(cond, timeout=20.0, what="condition", interval=0.01):
    """Polls cond() until it returns something truthy; fails after timeout."""
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


BASE_CONFIG = """
[service]
workers = {workers}
admin = "127.0.0.1:0"
storage_dir = "{dir}/state"
shutdown_timeout = "{shutdown_timeout}"
log_level = "{log_level}"

[listeners.public]
listen = "127.0.0.1:0"
"""


class Daemon:
    """One ingestd process with its own config directory."""

    def __init__(self, config_body, workers=1, shutdown_timeout="5s", log_level="info",
                 extra_files=None, stdout_pipe=True, read_stdout=True, env=None):
        self.dir = tempfile.mkdtemp(prefix="ingestd-e2e-")
        self.config_path = os.path.join(self.dir, "ingestd.toml")
        self.write_config(BASE_CONFIG.format(workers=workers, dir=self.dir,
                                             shutdown_timeout=shutdown_timeout,
                                             log_level=log_level) + config_body)
        for name, text in (extra_files or {}).items():
            path = os.path.join(self.dir, name)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
        self.proc = None
        self.port = None
        self.admin_port = None
        self.log_lines = []
        self.log_lock = threading.Lock()
        self.records = queue.Queue()
        self.stdout_pipe = stdout_pipe
        self.read_stdout = read_stdout
        self.env = env  # None: this process's environment

    def write_config(self, text, path=None):
        with open(path or self.config_path, "w") as f:
            f.write(text)

    # ---- process
    def start(self, expect_ready=True):
        """Starts (or restarts) the daemon; log_text() then shows this run only."""
        with self.log_lock:
            self.log_lines = []
        cmd = [BIN, "-c", self.config_path, "--plugins-dir", PLUGINS]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE if self.stdout_pipe else subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                     env=self.env)
        threading.Thread(target=self._read_log, daemon=True).start()
        if self.stdout_pipe and self.read_stdout:
            threading.Thread(target=self._read_stdout, daemon=True).start()
        if expect_ready:
            self.port = int(self.wait_log(r"listener public: listening on 127\.0\.0\.1:(\d+)").group(1))
            self.admin_port = int(self.wait_log(r"admin: listening on 127\.0\.0\.1:(\d+)").group(1))
            wait_for(lambda: self.admin_get("/readyz")[0] == 200, what="readiness")
        return self

    def _read_log(self):
        for raw in self.proc.stderr:
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self.log_lock:
                self.log_lines.append(line)

    def _read_stdout(self):
        for raw in self.proc.stdout:
            self.records.put(raw.decode("utf-8").rstrip("\n"))

    def log_text(self):
        with self.log_lock:
            return "\n".join(self.log_lines)

    def wait_log(self, pattern, timeout=20.0):
        rx = re.compile(pattern)

        def find():
            if self.proc.poll() is not None and not rx.search(self.log_text()):
                raise AssertionError("ingestd exited (%s) before logging %r:\n%s"
                                     % (self.proc.returncode, pattern, self.log_text()))
            return rx.search(self.log_text())
        return wait_for(find, timeout, "log line " + pattern)

    def signal(self, sig):
        self.proc.send_signal(sig)

    def stop(self, timeout=30):
        """SIGTERM, wait, and return the exit code (0 expected)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("ingestd did not stop within %ss:\n%s" % (timeout, self.log_text()))

    def kill(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    # ---- HTTP
    def post(self, path, body, headers=None, port=None):
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        h = {"Content-Type": "application/json"}
        h.update(headers or {})
        conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=20)
        try:
            conn.request("POST", path, body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            return r.status, data.decode("utf-8", "replace"), dict(r.getheaders())
        finally:
            conn.close()

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=20)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.read().decode("utf-8", "replace"), dict(r.getheaders())
        finally:
            conn.close()

    def admin_get(self, path):
        conn = http.client.HTTPConnection("127.0.0.1", self.admin_port, timeout=10)
        try:
            conn.request("GET", path)
            r = conn.getresponse()
            return r.status, r.read().decode()
        except OSError:
            return 0, ""
        finally:
            conn.close()

    def metric(self, name, **labels):
        """Sum of the series of `name` whose labels include `labels`."""
        status, text = self.admin_get("/metrics")
        assert status == 200, "metrics answered %s" % status
        total = 0.0
        found = False
        for line in text.splitlines():
            if line.startswith("#"):
                continue
            m = re.match(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})? (\S+)$", line)
            if not m or m.group(1) != name:
                continue
            have = dict(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(3) or ""))
            if all(have.get(k) == str(v) for k, v in labels.items()):
                total += float(m.group(4))
                found = True
        return total if found else None

    def next_record(self, timeout=20):
        try:
            return json.loads(self.records.get(timeout=timeout))
        except queue.Empty:
            raise AssertionError("no record on stdout within %ss:\n%s" % (timeout, self.log_text()))

    def no_more_records(self):
        return self.records.empty()


def run_ingestd(args, timeout=60):
    """Runs the binary to completion (for -t, --version...)."""
    p = subprocess.run([BIN] + args, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def raw_exchange(port, data, read_until_close=True, timeout=10):
    """Sends raw bytes and returns everything read until the peer closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        chunks = []
        while True:
            try:
                c = s.recv(65536)
            except socket.timeout:
                break
            if not c:
                break
            chunks.append(c)
            if not read_until_close:
                break
        return b"".join(chunks)
    finally:
        s.close()


PEERS = os.path.join(SOURCE, "tests", "peers")
PEER_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable


class PeerScript:
    """A test peer from tests/peers/ as a subprocess on 127.0.0.1: started on
    the port it prints ("listening on 127.0.0.1:PORT"), stopped with SIGTERM
    (by the test's cleanup when a test is given), JSON control calls."""

    def __init__(self, script, args, test=None, what=None):
        what = what or script
        self.proc = subprocess.Popen([PEER_PYTHON, os.path.join(PEERS, script)] + list(args),
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     stdin=subprocess.DEVNULL, text=True)
        if test is not None:
            test.addCleanup(self.stop)
        lines = queue.Queue()
        threading.Thread(target=lambda: lines.put(self.proc.stdout.readline()),
                         daemon=True).start()
        try:
            line = lines.get(timeout=20)
        except queue.Empty:
            line = ""
        if not line.startswith("listening on 127.0.0.1:"):
            self.kill()
            raise AssertionError("%s did not start: %r" % (what, line))
        self.port = int(line.rsplit(":", 1)[1])
        self.url = "http://127.0.0.1:%d" % self.port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()

    def call(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=json.dumps(body) if body is not None else None,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            data = r.read()
            assert r.status == 200, "%s %s: %s %s" % (method, path, r.status, data[:300])
            return json.loads(data)
        finally:
            conn.close()


class EsPeer(PeerScript):
    """tests/peers/es_peer.py."""

    def __init__(self, test, *args, port=0):
        self.args = args
        super().__init__("es_peer.py", ["--port", str(port), *args], test, "es_peer")

    def control(self, **fields):
        return self.call("POST", "/_control", fields)

    def stats(self):
        return self.call("GET", "/_peer/stats")

    def docs(self, index="*"):
        return self.call("GET", "/_peer/docs?index=" + index)["docs"]

    def count(self):
        try:
            return sum(self.stats()["indices"].values())
        except OSError:
            return -1
