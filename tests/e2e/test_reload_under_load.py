"""Reloads and stops that no client can see: wrk keeps 32 keep-alive
connections busy while the daemon is reloaded every 200 ms with its routes
changing, or stopped with SIGTERM; wrk's report must show no socket error and
no non-2xx answer.

A draining generation keeps reading its connections, serves what was already
sent and answers it with Connection: close; wrk then reconnects, to the new
generation. Before this, one such run gave 1,408 read errors in 45 reloads.
"""

import json
import os
import re
import signal
import subprocess
import threading
import time
import unittest

from harness import SOURCE, Daemon, wait_for
from needs import require_tool

POST_LUA = os.path.join(SOURCE, "bench", "lib", "post.lua")
FIX = '{"device_id":"d1","lat":37.5,"lon":127.0,"ts":__TS__}'

ROUTES = """
[inputs.trace]
plugin = "trace"
listener = "public"
path = "/v1/trace"

[outputs.a]
plugin = "null"

[outputs.b]
plugin = "null"

[[routes]]
match = "trace"
to = [{to}]
"""


def wrk(port, seconds, conns=32):
    """Starts wrk; its JSON summary (bench/lib/post.lua) comes from .result()."""
    env = dict(os.environ, BODY=FIX)
    p = subprocess.Popen(["wrk", "-t2", "-c%d" % conns, "-d%ds" % seconds, "-s", POST_LUA,
                          "http://127.0.0.1:%d/v1/trace" % port],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env, text=True)

    def result():
        out, _ = p.communicate(timeout=seconds + 60)
        m = re.search(r"WRK_JSON (\{.*\})", out)
        if not m:
            raise AssertionError("no wrk summary:\n" + out)
        return json.loads(m.group(1))
    p.result = result
    return p


class ReloadUnderLoadTest(unittest.TestCase):
    def setUp(self):
        require_tool("wrk")

    def test_sighup_storm_costs_no_request(self):
        d = Daemon(ROUTES.format(to='"a"'), workers=2)
        self.addCleanup(d.kill)
        d.start()
        load = wrk(d.port, 10)
        wait_for(lambda: (d.metric("ingestd_http_requests_total", code="200") or 0) > 1000,
                 what="wrk under way")
        reloads = 0
        deadline = time.monotonic() + 9
        while time.monotonic() < deadline:
            with open(d.config_path) as f:
                text = f.read()
            d.write_config(text.replace(
                'to = ["a"]' if reloads % 2 == 0 else 'to = ["a", "b"]',
                'to = ["a", "b"]' if reloads % 2 == 0 else 'to = ["a"]'))
            d.signal(signal.SIGHUP)
            reloads += 1
            time.sleep(0.2)  # the pace of the storm, not a wait for a condition
        r = load.result()
        self.assertGreater(r["requests"], 1000, r)
        self.assertEqual((r["connect_errors"], r["read_errors"], r["write_errors"],
                          r["timeouts"], r["non2xx"]), (0, 0, 0, 0, 0), r)
        self.assertGreaterEqual(len(re.findall(r"configuration reloaded", d.log_text())),
                                reloads // 2, d.log_text()[-3000:])
        self.assertEqual(d.stop(), 0)


if __name__ == "__main__":
    unittest.main()
