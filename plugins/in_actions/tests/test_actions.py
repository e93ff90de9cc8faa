"""The actions input against the real daemon: every invalid field answered
exactly, valid actions normalised, strict mode, the record size cap."""

import json
import os
import sys
import unittest

from harness import Daemon

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "common", "tests"))
from schema_cases import DROP, SchemaInputCases  # noqa: E402

CONFIG = """
[inputs.actions]
plugin = "actions"
listener = "public"
path = "/v1/actions"
max_record_bytes = "1KiB"

[inputs.actions_strict]
plugin = "actions"
listener = "public"
path = "/v1/actions/strict"
strict = true
max_device_id_bytes = 8
max_future_skew = "1h"
received_at_field = ""

[outputs.console]
plugin = "stdout"
flush_interval = "10ms"

[[routes]]
match = "actions*"
to = ["console"]
"""

PICKUP = {"device_id": "rider-1", "action": "picked_up"}

INVALID = [
    ({"action": DROP}, "action", "is required"),
    ({"action": None}, "action", "is required"),
    ({"action": ""}, "action", "must not be empty"),
    ({"action": 7}, "action", "must be a string"),
    ({"action": "a" * 65}, "action", "must be at most 64 bytes"),
    ({"action": "\u00e9" * 33}, "action", "must be at most 64 bytes"),  # 66 bytes
    ({"order_id": 5}, "order_id", "must be a string"),
    ({"properties": [1, 2]}, "properties", "must be an object"),
    ({"properties": "k=v"}, "properties", "must be an object"),
]


class ActionsTest(SchemaInputCases, unittest.TestCase):
    VALID = PICKUP
    PATH = "/v1/actions"
    STRICT_PATH = "/v1/actions/strict"
    INPUT = "actions"

    @classmethod
    def setUpClass(cls):
        cls.d = Daemon(CONFIG).start()

    @classmethod
    def tearDownClass(cls):
        code = cls.d.stop()
        assert code == 0, "exit code %s\n%s" % (code, cls.d.log_text())

    def test_invalid_fields(self):
        self.run_table(INVALID)

    def test_valid_action_comes_out_normalised(self):
        rec = self.valid(ts="2024-02-29T03:34:56.789Z", action="a" * 64, order_id="o-1",
                         properties={"eta_s": 120, "cash": False, "items": ["x"]})
        out = self.assert_accepted(rec)
        want = dict(rec, ts=1709177696789, received_at=out["received_at"])
        self.assertEqual(out, want)

    def test_strict_knows_every_field(self):
        rec = self.valid(device_id="r2", order_id="o", properties={})
        self.assertEqual(self.assert_accepted(rec, self.STRICT_PATH), rec)

    def test_record_size_cap(self):
        # The cap applies to the stored record: compact JSON with ts as epoch
        # ms and received_at (13 digits) added.
        def stored_size(rec):
            shaped = dict(rec, received_at=1000000000000)
            return len(json.dumps(shaped, separators=(",", ":")).encode())

        base = self.valid(properties={"pad": ""})
        pad = 1024 - stored_size(base)
        at_limit = self.valid(properties={"pad": "p" * pad})
        self.assertEqual(stored_size(at_limit), 1024)
        out = self.assert_accepted(at_limit)
        self.assertEqual(len(json.dumps(out, separators=(",", ":")).encode()), 1024)

        over = self.valid(properties={"pad": "p" * (pad + 1)})
        self.assert_rejected(over, None, "record is 1025 bytes, the limit is 1024")
        # Within a mixed body only the big one is refused.
        status, answer = self.post_json(self.PATH, [over, self.valid(device_id="small")])
        self.assertEqual((status, answer), (200, {"accepted": 1, "rejected_count": 1, "rejected": [
            {"index": 0, "reason": "record is 1025 bytes, the limit is 1024"}]}))
        self.assertEqual(self.d.next_record()["device_id"], "small")
        wait = self.d.metric("ingestd_input_rejected_too_large_total", input="actions")
        self.assertGreaterEqual(wait or 0, 2)


if __name__ == "__main__":
    unittest.main()
