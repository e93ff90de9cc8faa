"""API keys per listener: 401s, the key's name as the record's source, reload of
the keys file on SIGHUP, per-key rate limits (429 + Retry-After)."""

import json
import os
import signal
import unittest

from harness import BASE_CONFIG, Daemon, wait_for, run_ingestd, PLUGINS

KEY_A = "a" * 24
KEY_B = "b" * 24

CONFIG = """
api_keys_file = "{dir}/keys"
rate_limit = {rate}
rate_burst = {burst}
client_address_field = "client_ip"

[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[outputs.console]
plugin = "stdout"
flush_interval = "10ms"

[[routes]]
match = "trace"
to = ["console"]
"""


def make(rate=0, burst=0, keys="%s rider-app\n" % KEY_A):
    # The listener options follow [listeners.public] from BASE_CONFIG.
    d = Daemon("", extra_files={"keys": keys})
    d.write_config(BASE_CONFIG.format(workers=1, dir=d.dir, shutdown_timeout="5s",
                                      log_level="info")
                   + CONFIG.format(dir=d.dir, rate=rate, burst=burst))
    return d


def expect_only_marker(d, key):
    """Posts a marker record (retrying a 429 until the rate allows it) and
    returns every record printed before it: what the output had queued."""
    marker = {"marker": os.urandom(8).hex()}
    wait_for(lambda: d.post("/v1/trace", marker, {"x-api-key": key})[0] == 200, 10,
             "the marker accepted", interval=0.1)
    before = []
    while True:
        rec = d.next_record()
        if rec.get("marker") == marker["marker"]:
            return before
        before.append(rec)


class ApiKeyTest(unittest.TestCase):
    def setUp(self):
        self.d = make(keys="# comment\n%s rider-app\n\n%s dispatch\n" % (KEY_A, KEY_B)).start()

    def tearDown(self):
        self.assertEqual(self.d.stop(), 0, self.d.log_text())

    def test_missing_and_wrong_keys_get_401_json(self):
        status, body, _ = self.d.post("/v1/trace", {"device_id": "x"})
        self.assertEqual(status, 401, body)
        self.assertIn("x-api-key", json.loads(body)["error"])
        status, body, _ = self.d.post("/v1/trace", {"device_id": "x"}, {"x-api-key": "z" * 24})
        self.assertEqual(status, 401, body)
        self.assertEqual(json.loads(body), {"error": "invalid API key"})
        # A prefix of a real key is no key.
        status, _, _ = self.d.post("/v1/trace", {"device_id": "x"}, {"x-api-key": KEY_A[:-1]})
        self.assertEqual(status, 401)
        self.assertEqual(self.d.metric("ingestd_http_unauthorized_total", listener="public"), 3)
        # The next record out must be an accepted marker: the stdout output
        # writes its queue in order, so a refused record that had been kept
        # would come out before it.
        self.assertEqual(expect_only_marker(self.d, KEY_A), [])

    def test_key_name_becomes_the_source_and_cannot_be_forged(self):
        status, body, _ = self.d.post("/v1/trace", {"device_id": "x", "source": "forged"},
                                      {"X-Api-Key": KEY_B})
        self.assertEqual(status, 200, body)
        rec = self.d.next_record()
        self.assertEqual(rec["source"], "dispatch")
        self.assertEqual(rec["client_ip"], "127.0.0.1")

    def test_keys_file_is_reread_on_sighup(self):
        with open(os.path.join(self.d.dir, "keys"), "w") as f:
            f.write("%s dispatch\n" % KEY_B)
        self.d.signal(signal.SIGHUP)
        self.d.wait_log(r"configuration reloaded \(generation 2\)")
        self.assertEqual(self.d.post("/v1/trace", {"d": 1}, {"x-api-key": KEY_A})[0], 401)
        self.assertEqual(self.d.post("/v1/trace", {"d": 1}, {"x-api-key": KEY_B})[0], 200)

    def test_broken_keys_file_on_reload_keeps_the_old_keys(self):
        with open(os.path.join(self.d.dir, "keys"), "w") as f:
            f.write("onlyakey\n")
        self.d.signal(signal.SIGHUP)
        self.d.wait_log(r"reload refused")
        self.assertRegex(self.d.log_text(), r"keys:1: expected 'KEY NAME', found only a key")
        self.assertEqual(self.d.post("/v1/trace", {"d": 1}, {"x-api-key": KEY_A})[0], 200)


class RateLimitTest(unittest.TestCase):
    def test_over_the_rate_gets_429_with_retry_after(self):
        # 1 record/s with a burst of 5: the sixth record within a second is refused.
        d = make(rate=1, burst=5).start()
        try:
            h = {"x-api-key": KEY_A}
            status, body, _ = d.post("/v1/trace", [{"i": i} for i in range(5)], h)
            self.assertEqual(status, 200, body)
            status, body, headers = d.post("/v1/trace", [{"i": 5}, {"i": 6}], h)
            self.assertEqual(status, 429, body)
            self.assertGreaterEqual(int(headers["Retry-After"]), 1)
            self.assertIn("rate limit", json.loads(body)["error"])
            self.assertEqual(d.metric("ingestd_http_rate_limited_total", listener="public"), 1)
            # Nothing of the refused request was kept.
            # Nothing of the refused request was kept: after the five, the
            # next record out is a marker accepted after the refusal (its own
            # second, so the limit lets it in).
            got = [d.next_record()["i"] for _ in range(5)]
            self.assertEqual(got, list(range(5)))
            self.assertEqual(expect_only_marker(d, KEY_A), [])
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())


class KeysFileCheckTest(unittest.TestCase):
    def test_check_reports_keys_file_errors_with_line(self):
        d = make(keys="%s ok\nshort name\n%s dup\n" % (KEY_A, KEY_A))
        code, _, err = run_ingestd(["-t", "-c", d.config_path, "--plugins-dir", PLUGINS])
        self.assertEqual(code, 1, err)
        self.assertIn("keys:2: key for 'name' is shorter than 16 characters", err)
        self.assertIn("keys:3: key for 'dup' is listed twice", err)


class PathMetricsTest(unittest.TestCase):
    def test_answers_are_counted_per_path_and_unknown_paths_as_other(self):
        d = make(keys="%s app\n" % KEY_A).start()
        try:
            h = {"x-api-key": KEY_A}
            self.assertEqual(d.post("/v1/trace", {"a": 1}, h)[0], 200)
            self.assertEqual(d.post("/v1/trace", "[1]", h)[0], 400)
            self.assertEqual(d.post("/random/path", {"a": 1}, h)[0], 404)
            wait_for(lambda: d.metric("ingestd_http_requests_total", path="/v1/trace", code="200") == 1,
                     what="per-path counter")
            self.assertEqual(d.metric("ingestd_http_requests_total", path="/v1/trace", code="400"), 1)
            self.assertEqual(d.metric("ingestd_http_requests_total", path="other", code="404"), 1)
            self.assertGreater(d.metric("ingestd_http_request_bytes_total", path="/v1/trace"), 0)
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())


if __name__ == "__main__":
    unittest.main()
