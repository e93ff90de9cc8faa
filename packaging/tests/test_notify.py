"""sd_notify: the daemon tells systemd READY=1 after start, RELOADING=1 and
READY=1 around a reload, STOPPING=1 at shutdown, and WATCHDOG=1 every half
WATCHDOG_USEC. systemd is played by a datagram socket at NOTIFY_SOCKET."""

import os
import signal
import socket
import subprocess
import tempfile
import threading
import time
import unittest

import harness
from needs import require, require_tool
from pkgtest import BIN

CONFIG = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[outputs.discard]
plugin = "null"

[[routes]]
match = "*"
to = ["discard"]
"""


def has_libsystemd():
    r = subprocess.run(["ldd", BIN], capture_output=True, text=True)
    return "libsystemd" in r.stdout


class Notify(unittest.TestCase):
    def setUp(self):
        require_tool("ldd")
        require(has_libsystemd(), "ingestd is built without libsystemd (libsystemd-dev)")
        self.dir = tempfile.mkdtemp(prefix="ingestd-notify-")
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.messages = []
        self.lock = threading.Lock()
        threading.Thread(target=self.receive, daemon=True).start()

    def tearDown(self):
        os.environ.pop("NOTIFY_SOCKET", None)
        os.environ.pop("WATCHDOG_USEC", None)

    def receive(self):
        while True:
            try:
                data = self.sock.recv(4096)
            except OSError:
                return
            with self.lock:
                self.messages.append(data.decode())

    def sent(self, key):
        with self.lock:
            return [m for m in self.messages if key in m.split("\n")]

    def test_protocol(self):
        os.environ["NOTIFY_SOCKET"] = self.path
        os.environ["WATCHDOG_USEC"] = "200000"  # keep-alive every 100 ms
        d = harness.Daemon(CONFIG).start()
        try:
            harness.wait_for(lambda: self.sent("READY=1"), what="READY=1")
            harness.wait_for(lambda: len(self.sent("WATCHDOG=1")) >= 3, what="3 keep-alives")
            ready_before = len(self.sent("READY=1"))
            d.signal(signal.SIGHUP)
            harness.wait_for(lambda: self.sent("RELOADING=1"), what="RELOADING=1")
            harness.wait_for(lambda: len(self.sent("READY=1")) > ready_before,
                             what="READY=1 after the reload")
            reloading = self.sent("RELOADING=1")[0]
            self.assertRegex(reloading, r"MONOTONIC_USEC=\d+")
            with self.lock:
                order = [m.split("\n")[0] for m in self.messages if "WATCHDOG=1" not in m]
            self.assertEqual(order[:3], ["READY=1", "RELOADING=1", "READY=1"])
            self.assertEqual(d.stop(), 0, d.log_text())
            self.assertTrue(self.sent("STOPPING=1"))
        finally:
            d.kill()

    def test_no_socket_no_messages(self):
        # Outside systemd (no NOTIFY_SOCKET) nothing is sent and nothing fails,
        # even with WATCHDOG_USEC set. This process's own environment names the
        # listening socket, so a daemon that inherited it, or fell back to it,
        # would be caught; only the child's environment lacks NOTIFY_SOCKET.
        os.environ["NOTIFY_SOCKET"] = self.path
        env = dict(os.environ, WATCHDOG_USEC="100000")  # keep-alive every 50 ms if it could
        del env["NOTIFY_SOCKET"]
        t0 = time.monotonic()
        d = harness.Daemon(CONFIG, env=env).start()
        try:
            self.assertEqual(d.post("/v1/trace", {"device_id": "n"})[0], 200)
            d.signal(signal.SIGHUP)  # READY/RELOADING/READY under systemd
            d.wait_log(r"configuration reloaded \(generation 2\)")
            # Absence needs a window: at least ten watchdog periods of running.
            harness.wait_for(lambda: time.monotonic() - t0 > 0.5, what="0.5 s of running")
            self.assertEqual(d.post("/v1/trace", {"device_id": "m"})[0], 200)
            self.assertEqual(d.stop(), 0, d.log_text())  # STOPPING=1 under systemd
        finally:
            d.kill()
        # A barrier: datagrams on one socket arrive in order, so once ours is
        # received anything the daemon sent would have been received before it.
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
            s.sendto(b"BARRIER=1", self.path)
        harness.wait_for(lambda: self.sent("BARRIER=1"), what="the test's own datagram")
        with self.lock:
            self.assertEqual(self.messages, ["BARRIER=1"])


if __name__ == "__main__":
    unittest.main()
