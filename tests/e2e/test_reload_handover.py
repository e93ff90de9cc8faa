"""A reload loses no record that a memory queue holds: what the retiring
generation could not deliver within shutdown_timeout (its Redis address was
wrong) is carried over to the new generation, which delivers it (the reload
fixed the address). Against a real redis-server started by the test."""

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import unittest

from harness import Daemon, wait_for
from needs import require_tool

CONFIG = """
[inputs.trace]
plugin = "trace"
listener = "public"
path = "/v1/trace"

[outputs.positions]
plugin = "redis"
address = "127.0.0.1:{port}"
commands = [["SET", "pos:{{device_id}}", "{{lat}}"]]
retry_initial = "50ms"
retry_max = "200ms"

[[routes]]
match = "trace"
to = ["positions"]
"""


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ReloadHandoverTest(unittest.TestCase):
    def test_records_queued_in_memory_survive_a_reload(self):
        require_tool("redis-server")
        require_tool("redis-cli")
        tmp = tempfile.mkdtemp(prefix="ingestd-handover-")
        self.addCleanup(shutil.rmtree, tmp, True)
        port = free_port()
        redis = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                  "--save", "", "--appendonly", "no", "--dir", tmp],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(redis.wait)
        self.addCleanup(redis.terminate)

        def dbsize():
            out = subprocess.run(["redis-cli", "-p", str(port), "DBSIZE"], capture_output=True,
                                 text=True)
            return int(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip().isdigit() \
                else -1
        wait_for(lambda: dbsize() == 0, what="redis-server up")

        wrong = free_port()  # nothing listens there
        d = Daemon(CONFIG.format(port=wrong), shutdown_timeout="1s")
        self.addCleanup(d.kill)
        d.start()
        for i in range(50):
            body = '{"device_id":"d%d","lat":37.5,"lon":127.0,"ts":1700000000000}' % i
            self.assertEqual(d.post("/v1/trace", body)[:2], (200, '{"accepted":1}'))
        with open(d.config_path) as f:
            text = f.read()
        d.write_config(text.replace("127.0.0.1:%d" % wrong, "127.0.0.1:%d" % port))
        d.signal(signal.SIGHUP)
        d.wait_log(r"50 queued records handed to the next generation")
        d.wait_log(r"50 queued records carried over to generation 2")
        wait_for(lambda: dbsize() == 50, timeout=30, what="all 50 records in redis")
        self.assertNotRegex(d.log_text(), r"are lost")
        self.assertEqual(d.metric("ingestd_lost_records_total"), 0)
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
