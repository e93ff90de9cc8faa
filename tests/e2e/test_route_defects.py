"""Routing defects of issue 14, each proven by a test that failed before its
fix: filters run exactly once per record and route whatever the outputs'
buffers (defect 1); counters move only for what was admitted, and unrouted
records are answered, counted and warned about (defect 5). A route's own
copy (defect 3, end to end) is test_routing's fan-out test."""

import json
import unittest

from harness import PLUGINS, Daemon, run_ingestd, wait_for

MIXED = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[filters.shape]
plugin = "modify"
rename = {{ a = "b" }}
set = {{ a = "v" }}

[outputs.memory_out]
plugin = "stdout"
flush_interval = "5ms"

[outputs.disk_out]
plugin = "stdout"
buffer = "{buffer}"
flush_interval = "5ms"

[[routes]]
match = "trace"
filters = ["shape"]
to = ["memory_out", "disk_out"]
"""


class FiltersRunOnceTest(unittest.TestCase):
    def deliver(self, buffer):
        d = Daemon(MIXED.format(buffer=buffer)).start()
        try:
            status, body, _ = d.post("/v1/trace", {"a": 1})
            self.assertEqual(status, 200, body)
            return [d.next_record(), d.next_record()]
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())

    def test_memory_and_disk_outputs_of_one_route_get_the_record_filtered_once(self):
        # rename a -> b, then set a = "v": filtered once, {"a":1} is {"b":1,"a":"v"};
        # filtered twice it would be {"b":"v","a":"v"}.
        for buffer in ("memory", "disk"):
            with self.subTest(buffer=buffer):
                got = self.deliver(buffer)
                self.assertEqual(got, [{"b": 1, "a": "v"}] * 2)


COUNTED = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[inputs.logs]
plugin = "http"
listener = "public"
path = "/v1/metadata"

[outputs.small]
plugin = "null"
max_records = 4

[[routes]]
match = "trace"
to = ["small"]
"""


class CountersTest(unittest.TestCase):
    def test_route_counters_move_only_for_admitted_records(self):
        d = Daemon(COUNTED).start()
        try:
            # Five records cannot fit a queue of four: 503, nothing kept.
            status, body, _ = d.post("/v1/trace", [{"i": i} for i in range(5)])
            self.assertEqual(status, 503, body)
            self.assertEqual(d.metric("ingestd_input_refused_records_total", input="trace"), 5)
            self.assertEqual(d.metric("ingestd_route_records_total", route="0"), 0)
            self.assertEqual(d.metric("ingestd_input_records_total", input="trace"), 0)
            status, body, _ = d.post("/v1/trace", [{"i": i} for i in range(3)])
            self.assertEqual(status, 200, body)
            self.assertEqual(d.metric("ingestd_route_records_total", route="0"), 3)
            wait_for(lambda: d.metric("ingestd_output_records_total", output="small") == 3,
                     what="delivery")
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())

    def test_unrouted_records_are_counted_answered_and_warned_once(self):
        d = Daemon(COUNTED).start()
        try:
            for _ in range(2):
                status, body, _ = d.post("/v1/metadata", [{"m": 1}, {"m": 2}])
                self.assertEqual(status, 200, body)
                # The phone learns its records were taken but go nowhere.
                self.assertEqual(json.loads(body), {"accepted": 2, "unrouted": 2})
            self.assertEqual(d.metric("ingestd_records_unrouted_total", input="logs"), 4)
            d.wait_log(r"match no route")  # stderr is read by a thread
            # Both requests were answered, so a second warning would already
            # have been written before the admin answered the metrics.
            self.assertEqual(d.log_text().count("match no route"), 1)
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())

    def test_check_warns_of_an_input_no_route_matches(self):
        d = Daemon(COUNTED)
        rc, out, err = run_ingestd(["-t", "-c", d.config_path, "--plugins-dir", PLUGINS])
        self.assertEqual(rc, 0, err)
        self.assertRegex(err, r"ingestd\.toml:\d+:\d+: warning: input 'logs' \(tag 'logs'\) "
                              r"matches no route")
        self.assertNotIn("input 'trace'", err)


if __name__ == "__main__":
    unittest.main()
