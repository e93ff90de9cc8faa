#!/usr/bin/python3
"""Local Amazon Data Firehose peer: PutRecordBatch / PutRecord over the AWS
JSON 1.1 protocol, every request SigV4-verified with botocore's signer, with
fault injection for the ingestd firehose output tests (issue 5).

Run:  python3 firehose_peer.py --port 0 --stream S --credentials AKID:SECRET
Prints "listening on 127.0.0.1:PORT" and serves until SIGTERM.
See README.md in this directory for flags, control endpoint and sources.

Behaviour and where it comes from
---------------------------------
* Request/response shapes, limits: Firehose API Reference, PutRecordBatch
  (https://docs.aws.amazon.com/firehose/latest/APIReference/API_PutRecordBatch.html)
  and botocore's service model data/firehose/2015-08-04/service-2.json:
  Records 1..500, Data blob max 1,024,000 bytes (1,000 KiB) before base64,
  4 MB per request, DeliveryStreamName 1..64 of [a-zA-Z0-9_.-]. The response
  has FailedPutCount, Encrypted and RequestResponses in request order; a failed
  entry carries ErrorCode ServiceUnavailableException or InternalFailure.
* Constraint violations are answered like AWS's request validation does
  (HTTP 400 ValidationException, "1 validation error detected: Value ... at
  'records.N.member.data' failed to satisfy constraint: Member must have
  length less than or equal to 1024000"), as reported from real Firehose in
  osquery/osquery#3568 and postmates/cernan#210; the 4 MB total is
  InvalidArgumentException "Records size exceeds 4 MB limit" (osquery#3568).
* Throttling: the API Reference lists ServiceUnavailableException with HTTP
  status 500 for PutRecordBatch, and botocore's model marks the shape
  "fault": true (a server fault, 5xx) -- Firehose has no ThrottlingException.
  Per-record throttling ("Slow down.") inside an HTTP 200 with FailedPutCount
  is what real Firehose returns when the record or byte rate is exceeded
  (boto/boto3#2804 shows such a response). So here: calls/s over the limit ->
  whole call 500 ServiceUnavailableException; records/s and bytes/s over the
  limit -> the records that do not fit fail with "Slow down.".
* Errors use the JSON 1.1 protocol: body {"__type": CODE, "message": ...} and
  header x-amzn-ErrorType; client errors 400, server faults 500. Common errors
  (authentication) follow the Firehose "Common Errors" page and the messages
  real AWS JSON services return.
* Billing: each record is rounded up to 5 KB (Firehose pricing / FAQ:
  "The 5KB roundup is calculated at the record level"); 5 KB = 5120 bytes.
"""

import argparse
import base64
import binascii
import json
import math
import os
import re
import sys
import threading
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peer_common import (BodyTooLarge, Config, Latency, PeerHandler,  # noqa: E402
                         PeerServer, TokenBucket, serve, sleep_for)
from sigv4_verify import SigV4Error, Verifier  # noqa: E402

TARGET_PREFIX = "Firehose_20150804."
JSON11 = "application/x-amz-json-1.1"
MAX_RECORDS = 500
MAX_RECORD_BYTES = 1024000          # 1,000 KiB, botocore model Data.max
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # "4 MB for the entire request"
MAX_HTTP_BODY = 16 * 1024 * 1024     # beyond: 413 RequestEntityTooLargeException
STREAM_RE = re.compile(r"^[a-zA-Z0-9_.-]{1,64}$")
BILL_UNIT = 5 * 1024
ACCOUNT = "000000000000"
SERVICE_NS = "com.amazonaws.firehose.v20150804"
CORAL_NS = "com.amazon.coral.service"
COMMON_CODES = {"UnrecognizedClientException", "InvalidSignatureException",
                "ExpiredTokenException", "MissingAuthenticationTokenException",
                "IncompleteSignatureException", "SerializationException",
                "UnknownOperationException", "ValidationException",
                "InternalFailure", "RequestEntityTooLargeException"}

DEFAULTS = {
    # per record
    "fail_probability": 0.0,       # P(record fails)
    "fail_every_n": 0,             # every Nth record (global count) fails
    "fail_error_code": "ServiceUnavailableException",  # or InternalFailure
    "seed": 0,
    # whole call
    "throttle_probability": 0.0,   # P(call -> 500 ServiceUnavailableException)
    "throttle_next_calls": 0,      # the next N calls -> 500 ServiceUnavailable
    "internal_failure_probability": 0.0,
    "internal_failure_next_calls": 0,  # the next N calls -> 500 InternalFailure
    # rate limits (0 = off), per stream, burst = one second
    "calls_per_sec": 0.0,
    "records_per_sec": 0.0,
    "bytes_per_sec": 0.0,
    # latency
    "latency": 0.0,
    "spike_seconds": 0.0,
    "spike_probability": 0.0,
    "spike_every_n": 0,
    # protocol details
    "error_type_style": "short",   # "short" | "qualified" (coral namespaces)
    "max_skew_seconds": 300.0,
}


class ApiError(Exception):
    def __init__(self, status, code, message):
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def validation_error(problems):
    n = len(problems)
    return ApiError(400, "ValidationException",
                    f"{n} validation error{'s' if n != 1 else ''} detected: "
                    + "; ".join(problems))


class StreamStore:
    def __init__(self, out_dir):
        self.lock = threading.Lock()
        self.out_dir = out_dir
        self.streams = {}

    def ensure(self, name):
        with self.lock:
            return self._ensure(name)

    def _ensure(self, name):
        s = self.streams.get(name)
        if s is None:
            s = {"records": [], "calls": 0, "failed": 0, "bytes": 0,
                 "billed_5kb_units": 0}
            self.streams[name] = s
        return s

    def exists(self, name):
        with self.lock:
            return name in self.streams

    def remove(self, name):
        with self.lock:
            self.streams.pop(name, None)

    def add(self, name, accepted, failed):
        with self.lock:
            s = self._ensure(name)
            s["calls"] += 1
            s["failed"] += failed
            for data in accepted:
                s["records"].append(data)
                s["bytes"] += len(data)
                s["billed_5kb_units"] += max(1, math.ceil(len(data) / BILL_UNIT))
            if self.out_dir and accepted:
                with open(os.path.join(self.out_dir, name + ".ndjson"), "ab") as f:
                    f.write(b"".join(accepted))

    def reset(self):
        with self.lock:
            for s in self.streams.values():
                s.update(records=[], calls=0, failed=0, bytes=0, billed_5kb_units=0)


class State:
    def __init__(self, args):
        self.args = args
        self.defaults = dict(DEFAULTS)
        for k in DEFAULTS:
            v = getattr(args, k, None)
            if v is not None:
                self.defaults[k] = type(DEFAULTS[k])(v)
        self.config = Config(self.defaults)
        creds = list(args.credentials or [])
        if args.access_key:
            creds.append(f"{args.access_key}:{args.secret_key or ''}:{args.session_token or ''}")
        self.verifier = Verifier("firehose", args.region, creds,
                                 max_skew=self.defaults["max_skew_seconds"])
        self.store = StreamStore(args.out)
        for s in args.stream or []:
            self.store.ensure(s)
        self.lock = threading.Lock()
        self.record_counter = 0
        self.call_counter = 0
        self.buckets = {}
        self.stats = self._fresh_stats()

    @staticmethod
    def _fresh_stats():
        return {"requests": 0, "calls_ok": 0, "errors": {}, "auth_failures": {},
                "records_accepted": 0, "records_failed": 0, "bytes_accepted": 0,
                "calls_by_access_key": {}}

    def count_error(self, code, auth=False):
        with self.lock:
            self.stats["errors"][code] = self.stats["errors"].get(code, 0) + 1
            if auth:
                self.stats["auth_failures"][code] = self.stats["auth_failures"].get(code, 0) + 1

    def bucket(self, stream, kind, rate):
        key = (stream, kind)
        with self.lock:
            b = self.buckets.get(key)
            if b is None or b.rate != rate:
                b = TokenBucket(rate)
                self.buckets[key] = b
            return b


class Handler(PeerHandler):
    state = None  # set in main()

    # ---------------- HTTP entry points ----------------
    def do_GET(self):  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        if url.path in ("/_records", "/_stats", "/_control"):
            return self.peer_endpoint(url)
        self.aws_error(ApiError(404, "UnknownOperationException", "Not found"))

    def do_POST(self):  # noqa: N802
        url = urllib.parse.urlsplit(self.path)
        if url.path in ("/_control", "/_reset"):
            return self.peer_endpoint(url)
        try:
            self.api_call(url)
        except ApiError as e:
            self.aws_error(e)

    # ---------------- peer (test) endpoints ----------------
    def peer_endpoint(self, url):
        body = self.control_body()
        if body is None:
            return
        st = self.state
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/_records":
            name = (q.get("stream") or [""])[0]
            if not st.store.exists(name):
                return self.send_json(404, {"error": f"unknown stream {name!r}"})
            offset = int((q.get("offset") or ["0"])[0])
            with st.store.lock:
                s = st.store.streams[name]
                recs = s["records"][offset:]
                out = {k: v for k, v in s.items() if k != "records"}
                out["record_count"] = len(s["records"])
            out["offset"] = offset
            if (q.get("as") or [""])[0] == "text":
                out["records"] = [r.decode("utf-8", "replace") for r in recs]
            else:
                out["records"] = [base64.b64encode(r).decode() for r in recs]
            return self.send_json(200, out)
        if url.path == "/_stats":
            with st.lock:
                stats = json.loads(json.dumps(st.stats))
            with st.store.lock:
                stats["streams"] = {
                    n: {"record_count": len(s["records"]), "calls": s["calls"],
                        "failed": s["failed"], "bytes": s["bytes"],
                        "billed_5kb_units": s["billed_5kb_units"]}
                    for n, s in st.store.streams.items()}
            stats["credentials"] = st.verifier.describe()
            return self.send_json(200, stats)
        if url.path == "/_reset":
            opts = json.loads(body or b"{}")
            st.store.reset()
            with st.lock:
                st.stats = st._fresh_stats()
                st.record_counter = 0
                st.call_counter = 0
                st.buckets = {}
            if opts.get("faults"):
                st.config.update(st.defaults)
            return self.send_json(200, {"reset": True})
        # /_control
        if self.command == "GET":
            return self.send_json(200, st.config.snapshot())
        try:
            changes = json.loads(body or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("control body must be a JSON object")
            for spec in changes.pop("add_credentials", []) or []:
                st.verifier.add(spec)
            for akid in changes.pop("remove_access_keys", []) or []:
                st.verifier.remove(akid)
            for akid in changes.pop("expire_access_keys", []) or []:
                st.verifier.expire(akid, True)
            for akid in changes.pop("unexpire_access_keys", []) or []:
                st.verifier.expire(akid, False)
            for name in changes.pop("add_streams", []) or []:
                st.store.ensure(name)
            for name in changes.pop("remove_streams", []) or []:
                st.store.remove(name)
            if changes.get("error_type_style", "short") not in ("short", "qualified"):
                raise ValueError("error_type_style: short | qualified")
            if changes.get("fail_error_code", "ServiceUnavailableException") not in (
                    "ServiceUnavailableException", "InternalFailure"):
                raise ValueError("fail_error_code: ServiceUnavailableException | InternalFailure")
            unknown = st.config.update(changes)
            if unknown:
                return self.send_json(400, {"error": f"unknown control fields {unknown}"})
            if "fail_every_n" in changes:
                with st.lock:  # "every Nth" counts from the change
                    st.record_counter = 0
            if "max_skew_seconds" in changes:
                st.verifier.max_skew = float(changes["max_skew_seconds"])
        except (ValueError, TypeError) as e:
            return self.send_json(400, {"error": str(e)})
        snap = st.config.snapshot()
        snap["credentials"] = st.verifier.describe()
        return self.send_json(200, snap)

    # ---------------- AWS API ----------------
    def aws_error(self, e):
        st = self.state
        style = st.config.get("error_type_style")
        code = e.code
        headers = {"x-amzn-RequestId": os.urandom(16).hex()}
        if style == "qualified":
            ns = CORAL_NS if code in COMMON_CODES else SERVICE_NS
            type_str = f"{ns}#{code}"
            headers["x-amzn-ErrorType"] = f"{code}:http://internal.amazon.com/coral/{ns}/"
        else:
            type_str = code
            headers["x-amzn-ErrorType"] = code
        self.send_json(e.status, {"__type": type_str, "message": e.message},
                       content_type=JSON11, headers=headers)

    def api_call(self, url):
        st = self.state
        with st.lock:
            st.stats["requests"] += 1
        try:
            body = self.read_body(limit=MAX_HTTP_BODY)
        except BodyTooLarge:
            st.count_error("RequestEntityTooLargeException")
            raise ApiError(413, "RequestEntityTooLargeException",
                           "Request entity too large")
        except ValueError:
            self.close_connection = True
            raise ApiError(400, "SerializationException", "Malformed chunked body")

        # 1. authentication (before anything about the payload, like AWS)
        try:
            akid = st.verifier.verify(self.command, self.path, self.headers.items(), body,
                                      scheme=self.scheme)
            with st.lock:
                by_key = st.stats["calls_by_access_key"]
                by_key[akid] = by_key.get(akid, 0) + 1
        except SigV4Error as e:
            code = e.code if e.code.endswith("Exception") else e.code + "Exception"
            st.count_error(code, auth=True)
            raise ApiError(400, code, e.message)

        cfg = st.config.snapshot()
        with st.lock:
            st.call_counter += 1
            call_no = st.call_counter
            delay = Latency.delay_for(cfg, call_no, st.config.rng)
        sleep_for(delay)

        try:
            result = self.dispatch(body, cfg)
        except ApiError as e:
            st.count_error(e.code)
            raise
        with st.lock:
            st.stats["calls_ok"] += 1
        self.send_json(200, result, content_type=JSON11,
                       headers={"x-amzn-RequestId": os.urandom(16).hex()})

    def dispatch(self, body, cfg):
        st = self.state
        target = self.headers.get("X-Amz-Target", "")
        if not target.startswith(TARGET_PREFIX):
            raise ApiError(400, "UnknownOperationException", "")
        op = target[len(TARGET_PREFIX):]
        if op not in ("PutRecordBatch", "PutRecord"):
            raise ApiError(400, "UnknownOperationException", "")
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype != JSON11:
            raise ApiError(400, "SerializationException",
                           f"Unsupported Content-Type '{ctype}', expected {JSON11}")
        try:
            req = json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise ApiError(400, "SerializationException", f"Malformed JSON: {e}")
        if not isinstance(req, dict):
            raise ApiError(400, "SerializationException",
                           "Start of structure or map found where not expected.")

        name = req.get("DeliveryStreamName")
        problems = []
        if name is None:
            problems.append("Value null at 'deliveryStreamName' failed to satisfy "
                            "constraint: Member must not be null")
        elif not isinstance(name, str):
            raise ApiError(400, "SerializationException",
                           "DeliveryStreamName must be a string")
        else:
            if len(name) > 64:
                problems.append(f"Value '{name}' at 'deliveryStreamName' failed to "
                                "satisfy constraint: Member must have length less "
                                "than or equal to 64")
            elif not STREAM_RE.match(name):
                problems.append(f"Value '{name}' at 'deliveryStreamName' failed to "
                                "satisfy constraint: Member must satisfy regular "
                                "expression pattern: [a-zA-Z0-9_.-]+")

        if op == "PutRecord":
            rec = req.get("Record")
            raw_records = None if rec is None else [rec]
            field = "record"
        else:
            raw_records = req.get("Records")
            field = "records"
        if raw_records is None:
            problems.append(f"Value null at '{field}' failed to satisfy constraint: "
                            "Member must not be null")
            raw_records = []
        if not isinstance(raw_records, list):
            raise ApiError(400, "SerializationException",
                           "Records: start of list found where not expected")
        if op == "PutRecordBatch":
            if len(raw_records) > MAX_RECORDS:
                problems.append(f"Value '[{len(raw_records)} records]' at 'records' "
                                "failed to satisfy constraint: Member must have "
                                f"length less than or equal to {MAX_RECORDS}")
            elif len(raw_records) < 1 and req.get("Records") is not None:
                problems.append("Value '[]' at 'records' failed to satisfy "
                                "constraint: Member must have length greater than "
                                "or equal to 1")

        records = []
        for i, r in enumerate(raw_records):
            where = f"records.{i + 1}.member.data" if op == "PutRecordBatch" else "record.data"
            if not isinstance(r, dict):
                raise ApiError(400, "SerializationException",
                               "Start of structure or map found where not expected.")
            d = r.get("Data")
            if d is None:
                problems.append(f"Value null at '{where}' failed to satisfy "
                                "constraint: Member must not be null")
                records.append(b"")
                continue
            if not isinstance(d, str):
                raise ApiError(400, "SerializationException",
                               "Data must be a base64-encoded string")
            try:
                data = base64.b64decode(d, validate=True)
            except (binascii.Error, ValueError):
                raise ApiError(400, "SerializationException",
                               f"Base64 encoded value at '{where}' is not valid")
            if len(data) > MAX_RECORD_BYTES:
                problems.append(
                    f"Value 'java.nio.HeapByteBuffer[pos=0 lim={len(data)} "
                    f"cap={len(data)}]' at '{where}' failed to satisfy constraint: "
                    f"Member must have length less than or equal to {MAX_RECORD_BYTES}")
            records.append(data)
        if problems:
            raise validation_error(problems)

        if not st.store.exists(name):
            raise ApiError(400, "ResourceNotFoundException",
                           f"Firehose {name} under account {ACCOUNT} not found.")
        total = sum(len(r) for r in records)
        if total > MAX_REQUEST_BYTES:
            raise ApiError(400, "InvalidArgumentException",
                           "Records size exceeds 4 MB limit")

        # whole-call faults
        internal = st.config.fault("internal_failure_next_calls", "internal_failure_probability")
        throttle = not internal and st.config.fault("throttle_next_calls", "throttle_probability")
        if internal:
            raise ApiError(500, "InternalFailure",
                           "The request processing has failed because of an "
                           "unknown error, exception or failure.")
        if throttle:
            raise ApiError(500, "ServiceUnavailableException", "Slow down.")
        if cfg["calls_per_sec"] > 0 and not st.bucket(name, "calls", cfg["calls_per_sec"]).take(1):
            raise ApiError(500, "ServiceUnavailableException", "Slow down.")

        # per-record outcome
        rec_bucket = st.bucket(name, "records", cfg["records_per_sec"]) if cfg["records_per_sec"] > 0 else None
        byte_bucket = st.bucket(name, "bytes", cfg["bytes_per_sec"]) if cfg["bytes_per_sec"] > 0 else None
        responses, accepted, failed = [], [], 0
        fail_code = cfg["fail_error_code"]
        fail_msg = "Slow down." if fail_code == "ServiceUnavailableException" \
            else "Internal service failure."
        for data in records:
            with st.lock:
                st.record_counter += 1
                n = st.record_counter
                injected = (cfg["fail_every_n"] > 0 and n % cfg["fail_every_n"] == 0) or \
                    (cfg["fail_probability"] > 0 and st.config.rng.random() < cfg["fail_probability"])
            code, msg = (fail_code, fail_msg) if injected else (None, None)
            if code is None and rec_bucket is not None and not rec_bucket.take(1):
                code, msg = "ServiceUnavailableException", "Slow down."
            if code is None and byte_bucket is not None and not byte_bucket.take(len(data)):
                code, msg = "ServiceUnavailableException", "Slow down."
            if code:
                failed += 1
                responses.append({"ErrorCode": code, "ErrorMessage": msg})
            else:
                accepted.append(data)
                responses.append({"RecordId": base64.b64encode(os.urandom(168)).decode()})
        st.store.add(name, accepted, failed)
        with st.lock:
            st.stats["records_accepted"] += len(accepted)
            st.stats["records_failed"] += failed
            st.stats["bytes_accepted"] += sum(len(a) for a in accepted)

        if op == "PutRecord":
            if failed:  # PutRecord has no per-record status: the call fails
                raise ApiError(500, responses[0]["ErrorCode"], responses[0]["ErrorMessage"])
            return {"RecordId": responses[0]["RecordId"], "Encrypted": False}
        return {"FailedPutCount": failed, "Encrypted": False,
                "RequestResponses": responses}


def parse_args(argv):
    p = argparse.ArgumentParser(description="Local Firehose PutRecordBatch peer")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--stream", action="append", help="delivery stream (repeatable)")
    p.add_argument("--credentials", action="append", metavar="AKID:SECRET[:TOKEN]",
                   help="accepted credential set (repeatable)")
    p.add_argument("--access-key")
    p.add_argument("--secret-key")
    p.add_argument("--session-token")
    p.add_argument("--out", metavar="DIR", help="append accepted data to DIR/STREAM.ndjson")
    p.add_argument("--control-file", metavar="FILE",
                   help="JSON object of control fields applied at start")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--verbose", action="store_true")
    for k, v in DEFAULTS.items():
        p.add_argument("--" + k.replace("_", "-"), dest=k, type=type(v), default=None,
                       help=f"fault default (control field {k}, default {v!r})")
    args = p.parse_args(argv)
    if args.access_key and not args.secret_key:
        p.error("--access-key needs --secret-key")
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    if args.out:
        os.makedirs(args.out, exist_ok=True)
    state = State(args)
    if args.control_file:
        with open(args.control_file) as f:
            ctl = json.load(f)
        for spec in ctl.pop("add_credentials", []):
            state.verifier.add(spec)
        for name in ctl.pop("add_streams", []):
            state.store.ensure(name)
        unknown = state.config.update(ctl)
        if unknown:
            sys.exit(f"unknown control fields {unknown}")
        state.defaults.update({k: v for k, v in ctl.items() if k in DEFAULTS})
    Handler.state = state
    Handler.verbose = args.verbose
    server = PeerServer(args.port, Handler, args.tls_cert, args.tls_key)
    return serve(server, "firehose_peer")


if __name__ == "__main__":
    sys.exit(main())
