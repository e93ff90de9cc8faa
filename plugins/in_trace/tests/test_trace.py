"""The trace input against the real daemon: every invalid field answered
exactly, valid fixes normalised (ts, geohash, received_at), strict mode."""

import os
import shutil
import sys
import tempfile
import unittest

from harness import BASE_CONFIG, PLUGINS, Daemon, run_ingestd

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "common", "tests"))
from schema_cases import DROP, SchemaInputCases  # noqa: E402

CONFIG = """
[inputs.trace]
plugin = "trace"
listener = "public"
path = "/v1/trace"

[inputs.trace_strict]
plugin = "trace"
listener = "public"
path = "/v1/trace/strict"
strict = true
max_device_id_bytes = 8
max_future_skew = "1h"
received_at_field = ""
geohash_precision = 5

[inputs.trace_nohash]
plugin = "trace"
listener = "public"
path = "/v1/trace/nohash"
geohash_precision = 0
received_at_field = "meta.received_at"

[outputs.console]
plugin = "stdout"
flush_interval = "10ms"

[[routes]]
match = "trace*"
to = ["console"]
"""

SEOUL = {"device_id": "rider-1", "lat": 37.5665, "lon": 126.9780}

INVALID = [
    ({"lat": DROP}, "lat", "is required"),
    ({"lat": None}, "lat", "is required"),
    ({"lat": "37.5"}, "lat", "must be a number from -90 to 90"),
    ({"lat": 90.0001}, "lat", "must be a number from -90 to 90"),
    ({"lat": -91}, "lat", "must be a number from -90 to 90"),
    ({"lat": True}, "lat", "must be a number from -90 to 90"),
    ({"lon": DROP}, "lon", "is required"),
    ({"lon": 180.5}, "lon", "must be a number from -180 to 180"),
    ({"lon": -180.0001}, "lon", "must be a number from -180 to 180"),
    ({"lon": [126.9]}, "lon", "must be a number from -180 to 180"),
    ({"speed": -0.1}, "speed", "must be a number >= 0"),
    ({"speed": "fast"}, "speed", "must be a number >= 0"),
    ({"heading": 360}, "heading", "must be a number from 0 to less than 360"),
    ({"heading": -1}, "heading", "must be a number from 0 to less than 360"),
    ({"heading": "N"}, "heading", "must be a number from 0 to less than 360"),
    ({"accuracy": -5}, "accuracy", "must be a number >= 0"),
    ({"altitude": "high"}, "altitude", "must be a number"),
    ({"battery": 100.5}, "battery", "must be a number from 0 to 100"),
    ({"battery": -1}, "battery", "must be a number from 0 to 100"),
    ({"order_id": 12345}, "order_id", "must be a string"),
    ({"order_id": {"id": "o1"}}, "order_id", "must be a string"),
]


class TraceTest(SchemaInputCases, unittest.TestCase):
    VALID = SEOUL
    PATH = "/v1/trace"
    STRICT_PATH = "/v1/trace/strict"
    INPUT = "trace"

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(CONFIG).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        assert code == 0, "exit code %s\n%s" % (code, cls.d.log_text())

    def test_invalid_fields(self):
        self.run_table(INVALID)

    def test_valid_fix_comes_out_normalised_with_geohash(self):
        rec = self.valid(ts="2024-02-29T12:34:56.789+09:00", speed=4.2, heading=359.9,
                         accuracy=3, altitude=-12.5, battery=0, order_id="o-77")
        out = self.assert_accepted(rec)
        want = dict(rec, ts=1709177696789, geohash="wydm9qy89")
        want["received_at"] = out["received_at"]
        self.assertEqual(out, want)

    def test_boundaries_are_accepted(self):
        cases = [
            ({"lat": 90, "lon": 180}, "zzzzzzzzz"),
            ({"lat": -90, "lon": -180}, "000000000"),
            ({"lat": 0, "lon": 0}, "s00000000"),
            ({"lat": 57.64911, "lon": 10.40744}, "u4pruydqq"),
        ]
        for changes, geohash in cases:
            with self.subTest(changes=changes):
                out = self.assert_accepted(self.valid(heading=0, speed=0, battery=100, **changes))
                self.assertEqual(out["geohash"], geohash)

    def test_optional_fields_may_be_null(self):
        out = self.assert_accepted(self.valid(speed=None, order_id=None))
        self.assertIsNone(out["speed"])
        self.assertIsNone(out["order_id"])

    def test_a_sent_geohash_is_replaced(self):
        out = self.assert_accepted(self.valid(geohash="bogus"))
        self.assertEqual(out["geohash"], "wydm9qy89")

    def test_strict_uses_its_own_precision_and_knows_every_field(self):
        rec = self.valid(device_id="r2", speed=1, heading=2, accuracy=3, altitude=4, battery=5,
                         order_id="o")
        out = self.assert_accepted(rec, self.STRICT_PATH)
        self.assertEqual(out, dict(rec, geohash="wydm9"))
        self.assert_rejected(self.valid(geohash="wydm9"), "geohash", "unknown field",
                             self.STRICT_PATH)

    def test_precision_zero_adds_no_geohash_and_nested_received_at(self):
        out = self.assert_accepted(self.valid(), "/v1/trace/nohash")
        self.assertNotIn("geohash", out)
        self.assertIsInstance(out["meta"]["received_at"], int)
        self.assert_rejected(self.valid(meta=5), "meta.received_at",
                             "cannot be set: a parent is not an object", "/v1/trace/nohash")


class TraceConfigTest(unittest.TestCase):
    """`ingestd -t` refuses what the option table and on_init cannot accept."""

    def check(self, options):
        d = tempfile.mkdtemp(prefix="ingestd-trace-t-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        path = os.path.join(d, "ingestd.toml")
        with open(path, "w") as f:
            f.write(BASE_CONFIG.format(workers=1, dir=d, shutdown_timeout="1s", log_level="info"))
            f.write('[inputs.trace]\nplugin = "trace"\nlistener = "public"\npath = "/t"\n')
            f.write(options + '\n[outputs.o]\nplugin = "null"\n[[routes]]\nmatch = "*"\nto = ["o"]\n')
        return run_ingestd(["-t", "-c", path, "--plugins-dir", PLUGINS])

    def test_defaults_are_valid(self):
        code, out, err = self.check("")
        self.assertEqual(code, 0, out + err)

    def test_bad_options_are_refused(self):
        cases = [
            ("geohash_precision = 13", "option 'geohash_precision' must be between 0 and 12"),
            ("max_device_id_bytes = 0", "option 'max_device_id_bytes' must be between 1 and 4096"),
            ('max_future_skew = "soon"', "invalid duration 'soon'"),
            ('received_at_field = "lat"', "'lat' would overwrite a field this input checks"),
            ('received_at_field = "geohash"', "'geohash' would overwrite a field"),
        ]
        for option, message in cases:
            with self.subTest(option=option):
                code, out, err = self.check(option)
                self.assertEqual(code, 1, out + err)
                self.assertIn(message, out + err)
        # With no geohash added, the name is free.
        code, out, err = self.check('geohash_precision = 0\nreceived_at_field = "geohash"')
        self.assertEqual(code, 0, out + err)


if __name__ == "__main__":
    unittest.main()
