"""The metadata input against the real daemon: every invalid field answered
exactly, levels normalised, long messages truncated and flagged, strict mode."""

import os
import sys
import unittest

from harness import Daemon

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "common", "tests"))
from schema_cases import DROP, SchemaInputCases  # noqa: E402

CONFIG = """
[inputs.metadata]
plugin = "metadata"
listener = "public"
path = "/v1/metadata"
max_message_bytes = "16B"

[inputs.metadata_strict]
plugin = "metadata"
listener = "public"
path = "/v1/metadata/strict"
strict = true
max_device_id_bytes = 8
max_future_skew = "1h"
received_at_field = ""

[outputs.console]
plugin = "stdout"
flush_interval = "10ms"

[[routes]]
match = "metadata*"
to = ["console"]
"""

LOG = {"device_id": "rider-1", "level": "info", "message": "app started"}
LEVEL_REASON = "must be one of debug, info, warn, error, fatal"

INVALID = [
    ({"level": DROP}, "level", "is required"),
    ({"level": None}, "level", "is required"),
    ({"level": "verbose"}, "level", LEVEL_REASON),
    ({"level": ""}, "level", LEVEL_REASON),
    ({"level": "info "}, "level", LEVEL_REASON),
    ({"level": 3}, "level", LEVEL_REASON),
    ({"message": DROP}, "message", "is required"),
    ({"message": None}, "message", "is required"),
    ({"message": ["a"]}, "message", "must be a string"),
    ({"app_version": 3.1}, "app_version", "must be a string"),
    ({"os": {"name": "android"}}, "os", "must be a string"),
    ({"model": False}, "model", "must be a string"),
    ({"context": "screen=home"}, "context", "must be an object"),
    ({"context": []}, "context", "must be an object"),
]


class MetadataTest(SchemaInputCases, unittest.TestCase):
    VALID = LOG
    PATH = "/v1/metadata"
    STRICT_PATH = "/v1/metadata/strict"
    INPUT = "metadata"

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(CONFIG).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        assert code == 0, "exit code %s\n%s" % (code, cls.d.log_text())

    def test_invalid_fields(self):
        self.run_table(INVALID)

    def test_valid_log_comes_out_normalised(self):
        rec = self.valid(ts="2024-02-29T12:34:56.789+09:00", level="error", message="",
                         app_version="3.2.1", os="android 14", model="SM-S918N",
                         context={"screen": "map", "retry": 2})
        out = self.assert_accepted(rec)
        self.assertEqual(out, dict(rec, ts=1709177696789, received_at=out["received_at"]))

    def test_levels_are_normalised(self):
        cases = [("debug", "debug"), ("info", "info"), ("warn", "warn"), ("error", "error"),
                 ("fatal", "fatal"), ("warning", "warn"), ("WARNING", "warn"), ("Info", "info"),
                 ("FATAL", "fatal")]
        for sent, stored in cases:
            with self.subTest(level=sent):
                self.assertEqual(self.assert_accepted(self.valid(level=sent))["level"], stored)

    def test_long_messages_are_truncated_at_a_character_boundary(self):
        cases = [
            ("0123456789abcdef", "0123456789abcdef", None),  # exactly 16 bytes: kept
            ("0123456789abcdefg", "0123456789abcdef", 17),
            # 가 is 3 bytes: 6 of them are 18 bytes; 5 fit in 16.
            ("\uac00" * 6, "\uac00" * 5, 18),
            # 15 ASCII bytes then a 4-byte emoji: the emoji does not fit.
            ("x" * 15 + "\U0001F600", "x" * 15, 19),
            ("x" * 12 + "\U0001F600" + "tail", "x" * 12 + "\U0001F600", 20),
        ]
        for sent, kept, original in cases:
            with self.subTest(message=sent):
                out = self.assert_accepted(self.valid(message=sent))
                self.assertEqual(out["message"], kept)
                if original is None:
                    self.assertNotIn("message_truncated", out)
                    self.assertNotIn("message_bytes", out)
                else:
                    self.assertIs(out["message_truncated"], True)
                    self.assertEqual(out["message_bytes"], original)
        self.assertGreaterEqual(
            self.d.metric("ingestd_input_messages_truncated_total", input="metadata") or 0, 4)

    def test_flags_sent_by_the_phone_are_not_trusted(self):
        out = self.assert_accepted(self.valid(message_truncated=True, message_bytes=99))
        self.assertNotIn("message_truncated", out)
        self.assertNotIn("message_bytes", out)

    def test_default_cap_is_16_kib(self):
        rec = self.valid(device_id="r2", message="m" * (16 * 1024 + 1))
        out = self.assert_accepted(rec, self.STRICT_PATH)
        self.assertEqual(len(out["message"]), 16 * 1024)
        self.assertEqual((out["message_truncated"], out["message_bytes"]), (True, 16 * 1024 + 1))

    def test_strict_knows_every_field(self):
        rec = self.valid(device_id="r3", app_version="1", os="ios", model="iPhone15,2",
                         context={})
        self.assertEqual(self.assert_accepted(rec, self.STRICT_PATH), rec)


if __name__ == "__main__":
    unittest.main()
