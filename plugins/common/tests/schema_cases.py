"""End-to-end checks every schema input (trace, actions, metadata) shares:
device_id, ts, received_at, strict mode, mixed and all-invalid bodies.

A plugin's test class mixes SchemaInputCases into a unittest.TestCase and
sets VALID (a minimal valid record without ts), PATH (input with default
options), STRICT_PATH (input with strict = true, max_device_id_bytes = 8,
max_future_skew = "1h", received_at_field = "") and INPUT (the default
input's name). The daemon is cls.d, one per class, routed to stdout.
"""

import calendar
import json
import time

from harness import wait_for

DROP = object()  # in a change table: remove the field

# 2024-02-29T12:34:56.789+09:00, a leap day, as epoch milliseconds.
LEAP_DAY_MS = calendar.timegm((2024, 2, 29, 3, 34, 56)) * 1000 + 789
DAY_MS = 86400 * 1000


def now_ms():
    return int(time.time() * 1000)


def rfc3339(ms):
    """Epoch ms as RFC 3339 UTC with milliseconds."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms // 1000)) + ".%03dZ" % (ms % 1000)


def changed(base, changes):
    rec = dict(base)
    for k, v in changes.items():
        if v is DROP:
            rec.pop(k, None)
        else:
            rec[k] = v
    return rec


# (changes to a valid record, field, reason): each must be rejected alone.
# Callables are evaluated when the test runs (times relative to now).
COMMON_INVALID = [
    ({"device_id": DROP}, "device_id", "is required"),
    ({"device_id": None}, "device_id", "is required"),
    ({"device_id": 42}, "device_id", "must be a string"),
    ({"device_id": ["d1"]}, "device_id", "must be a string"),
    ({"device_id": ""}, "device_id", "must not be empty"),
    ({"device_id": "x" * 129}, "device_id", "must be at most 128 bytes"),
    ({"device_id": "\uac00" * 43}, "device_id", "must be at most 128 bytes"),  # 129 bytes
    ({"ts": DROP}, "ts", "is required"),
    ({"ts": None}, "ts", "is required"),
    ({"ts": 1764064800}, "ts", "looks like epoch seconds; send milliseconds"),
    ({"ts": 99999999999}, "ts", "looks like epoch seconds; send milliseconds"),
    ({"ts": -1}, "ts", "looks like epoch seconds; send milliseconds"),
    ({"ts": 1764064800000.5}, "ts", "must be an integer"),
    ({"ts": "2026-02-30T10:00:00Z"}, "ts", "must be epoch milliseconds or an RFC 3339 time"),
    ({"ts": "2025-02-29T10:00:00Z"}, "ts", "must be epoch milliseconds or an RFC 3339 time"),
    ({"ts": "2026-11-25T10:00:00"}, "ts", "must be epoch milliseconds or an RFC 3339 time"),
    ({"ts": "2026-11-25"}, "ts", "must be epoch milliseconds or an RFC 3339 time"),
    ({"ts": "1764064800000"}, "ts", "must be epoch milliseconds or an RFC 3339 time"),
    ({"ts": "yesterday"}, "ts", "must be epoch milliseconds or an RFC 3339 time"),
    ({"ts": True}, "ts", "must be epoch milliseconds or an RFC 3339 time"),
    ({"ts": {"ms": 1}}, "ts", "must be epoch milliseconds or an RFC 3339 time"),
    ({"ts": lambda: now_ms() + 2 * DAY_MS}, "ts", "is more than 24h in the future"),
    ({"ts": lambda: rfc3339(now_ms() + 2 * DAY_MS)}, "ts", "is more than 24h in the future"),
    ({"ts": 1e300}, "ts", "is more than 24h in the future"),
]


class SchemaInputCases:
    VALID = None
    PATH = None
    STRICT_PATH = None
    INPUT = None

    # ---- helpers
    def valid(self, **changes):
        rec = dict(self.VALID)
        rec["ts"] = LEAP_DAY_MS
        return changed(rec, changes)

    def post_json(self, path, body, headers=None):
        status, text, _ = self.d.post(path, body, headers)
        try:
            return status, json.loads(text)
        except ValueError:
            self.fail("answer is not JSON: %r" % text)

    def assert_rejected(self, rec, field, reason, path=None):
        status, answer = self.post_json(path or self.PATH, rec)
        want = {"index": 0, "reason": reason}
        if field is not None:
            want["field"] = field
        self.assertEqual((status, answer),
                         (400, {"accepted": 0, "rejected_count": 1, "rejected": [want]}), rec)

    def assert_accepted(self, rec, path=None):
        """Posts one record, checks the answer and returns what the output wrote."""
        before = now_ms()
        status, answer = self.post_json(path or self.PATH, rec)
        after = now_ms()
        self.assertEqual((status, answer), (200, {"accepted": 1}), rec)
        out = self.d.next_record()
        if (path or self.PATH) == self.PATH:
            self.assertIsInstance(out.get("received_at"), int, out)
            self.assertTrue(before - 1000 <= out["received_at"] <= after + 1000, out)
        return out

    def run_table(self, table, path=None):
        for changes, field, reason in table:
            changes = {k: (v() if callable(v) else v) for k, v in changes.items()}
            with self.subTest(changes=changes):
                self.assert_rejected(self.valid(**changes), field, reason, path)

    # ---- the shared tests
    def test_common_invalid_fields(self):
        self.run_table(COMMON_INVALID)

    def test_ts_forms_are_normalised_to_epoch_ms(self):
        now = now_ms()
        cases = [
            (LEAP_DAY_MS, LEAP_DAY_MS),
            (float(LEAP_DAY_MS), LEAP_DAY_MS),  # 1709177696789.0 is an integer
            ("2024-02-29T12:34:56.789+09:00", LEAP_DAY_MS),
            ("2024-02-29T03:34:56.789999999Z", LEAP_DAY_MS),  # truncated, not rounded
            ("2024-02-28T23:04:56.789-04:30", LEAP_DAY_MS),
            ("2024-02-29t03:34:56.789z", LEAP_DAY_MS),
            ("2024-02-29T03:34:56Z", LEAP_DAY_MS - 789),
            (now + 3600 * 1000, now + 3600 * 1000),  # an hour ahead: within 24h
            (100000000000, 100000000000),  # the smallest accepted
        ]
        for ts, want in cases:
            with self.subTest(ts=ts):
                out = self.assert_accepted(self.valid(ts=ts))
                self.assertEqual(out["ts"], want)
                self.assertIsInstance(out["ts"], int)

    def test_unknown_fields_are_kept_unless_strict(self):
        rec = self.valid(extra={"nested": [1, 2]}, note="kept")
        out = self.assert_accepted(rec)
        self.assertEqual(out["extra"], {"nested": [1, 2]})
        self.assertEqual(out["note"], "kept")
        self.assert_rejected(self.valid(extra=1), "extra", "unknown field", self.STRICT_PATH)
        self.assert_rejected(self.valid(received_at=1), "received_at", "unknown field",
                             self.STRICT_PATH)

    def test_strict_input_options(self):
        out = self.assert_accepted(self.valid(device_id="8bytes!!"), self.STRICT_PATH)
        self.assertNotIn("received_at", out)  # received_at_field = ""
        self.assert_rejected(self.valid(device_id="9bytes!!!"), "device_id",
                             "must be at most 8 bytes", self.STRICT_PATH)
        self.assert_rejected(self.valid(ts=now_ms() + 2 * 3600 * 1000), "ts",
                             "is more than 1h in the future", self.STRICT_PATH)

    def test_mixed_body_accepts_the_valid_records(self):
        body = [self.valid(device_id="mix-a"), self.valid(device_id=DROP), 7,
                self.valid(device_id="mix-b"), self.valid(ts="soon")]
        status, answer = self.post_json(self.PATH, body)
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer["accepted"], 2)
        self.assertEqual(answer["rejected_count"], 3)
        rejected = answer["rejected"]
        self.assertEqual(rejected[0], {"index": 1, "field": "device_id", "reason": "is required"})
        self.assertEqual(rejected[1]["index"], 2)
        self.assertNotIn("field", rejected[1])
        self.assertEqual(rejected[2], {"index": 4, "field": "ts",
                                       "reason": "must be epoch milliseconds or an RFC 3339 time"})
        self.assertEqual([self.d.next_record()["device_id"] for _ in range(2)], ["mix-a", "mix-b"])

    def test_ndjson_body_mixed(self):
        lines = [self.valid(device_id="nd-a"), self.valid(ts=1), self.valid(device_id="nd-b")]
        body = "\n".join(json.dumps(r) for r in lines) + "\n"
        status, answer = self.post_json(self.PATH, body, {"Content-Type": "application/x-ndjson"})
        self.assertEqual(status, 200, answer)
        self.assertEqual(answer, {"accepted": 2, "rejected_count": 1, "rejected": [
            {"index": 1, "field": "ts", "reason": "looks like epoch seconds; send milliseconds"}]})
        self.assertEqual([self.d.next_record()["device_id"] for _ in range(2)], ["nd-a", "nd-b"])

    def test_all_invalid_is_a_400_listing_each(self):
        body = [self.valid(device_id=DROP), self.valid(ts=DROP), "x"]
        status, answer = self.post_json(self.PATH, body)
        self.assertEqual(status, 400, answer)
        self.assertEqual(answer["accepted"], 0)
        self.assertEqual(answer["rejected_count"], 3)
        self.assertEqual([r["index"] for r in answer["rejected"]], [0, 1, 2])
        self.assertEqual(answer["rejected"][1], {"index": 1, "field": "ts", "reason": "is required"})

    def test_rejections_are_counted_by_reason(self):
        def count(name):
            return self.d.metric(name, input=self.INPUT) or 0
        missing = count("ingestd_input_rejected_missing_field_total")
        bad_ts = count("ingestd_input_rejected_bad_ts_total")
        self.assert_rejected(self.valid(ts=5), "ts", "looks like epoch seconds; send milliseconds")
        self.assert_rejected(self.valid(device_id=DROP), "device_id", "is required")
        wait_for(lambda: count("ingestd_input_rejected_bad_ts_total") == bad_ts + 1,
                 what="bad ts counter")
        wait_for(lambda: count("ingestd_input_rejected_missing_field_total") == missing + 1,
                 what="missing field counter")
