#!/usr/bin/python3
"""Local Elasticsearch / OpenSearch peer implementing the _bulk API for the
ingestd elasticsearch output tests (issue 6): per-item results, documents
stored by index and _id, gzip bodies, mapping errors, basic / ApiKey / SigV4
auth (verified with botocore's signer), and fault injection.

Run:  python3 es_peer.py --port 0 [--es-version 8.11.0] [--basic u:p] ...
Prints "listening on 127.0.0.1:PORT" and serves until SIGTERM.
See README.md in this directory for flags, control endpoint and sources.

Behaviour and where it comes from
---------------------------------
* Bulk format (Elasticsearch reference, "Bulk API", docs-bulk.html): NDJSON of
  action_and_meta_data\\n optional_source\\n; actions index, create, delete,
  update; "the final line of data must end with a newline character \\n" --
  otherwise 400 illegal_argument_exception "The bulk request must be
  terminated by a newline [\\n]". Content-Type application/x-ndjson
  (application/json accepted); other types -> 406 like ES.
* Response: {"took","errors","items":[{ACTION:{_index,_id,_version,result,
  _shards,_seq_no,_primary_term,status}}]} in request order; failed items
  carry status and error {type, reason, ...} (docs-bulk.html "Response body").
  create of an existing id -> 409 version_conflict_engine_exception; update of
  a missing doc -> 404 document_missing_exception; delete of a missing doc ->
  404 result not_found (no error).
* _type in action lines: removed in 8.0 ("Removal of mapping types"); ES 8 and
  OpenSearch 2 answer 400 illegal_argument_exception "Action/metadata line [N]
  contains an unknown parameter [_type]"; ES 7 accepts it (items echo
  "_type": "_doc").
* Mapping errors: ES >= 8.8 reports document_parsing_exception, ES 7 and
  OpenSearch mapper_parsing_exception; reason "failed to parse field [F] of
  type [T] in document with id 'ID'. Preview of field's value: 'V'".
* filter_path (Elasticsearch reference, "Common options", response
  filtering): comma-separated dot paths; "*" matches any part of a field
  name, "**" any number of levels, a leading "-" excludes; arrays are
  transparent; objects left empty are dropped; nothing matched gives {}.
* Rejections: item or whole-request 429 es_rejected_execution_exception
  (write thread pool / indexing pressure); 503 cluster_block_exception; 413
  with an empty body when the (decompressed) body exceeds
  http.max_content_length (default 100mb, Netty aggregator behaviour).
* Auth: basic and ApiKey realms answer 401 security_exception with
  WWW-Authenticate (OpenSearch security plugin: 401 "Unauthorized");
  SigV4 for Amazon OpenSearch Service ("es") and Serverless ("aoss", where
  the x-amz-content-sha256 header is required) answers 403 {"message": ...}.
"""

import argparse
import base64
import fnmatch
import gzip
import json
import os
import re
import sys
import threading
import time
import urllib.parse
import uuid
import zlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from peer_common import (BodyTooLarge, Config, Latency, PeerHandler,  # noqa: E402
                         PeerServer, serve, sleep_for)
from sigv4_verify import SigV4Error, Verifier  # noqa: E402

DEFAULT_MAX_CONTENT = 100 * 1024 * 1024
BULK_PARAMS = {"pipeline", "refresh", "routing", "timeout", "wait_for_active_shards",
               "require_alias", "require_data_stream", "_source", "_source_includes",
               "_source_excludes", "filter_path", "pretty", "human", "error_trace",
               "list_executed_pipelines", "include_source_on_error", "type"}
ACTION_PARAMS = {"_index", "_id", "routing", "pipeline", "require_alias",
                 "require_data_stream", "if_seq_no", "if_primary_term", "version",
                 "version_type", "dynamic_templates", "retry_on_conflict",
                 "_source", "op_type", "list_executed_pipelines"}

DEFAULTS = {
    # per item
    "item_429_probability": 0.0,
    "item_429_every_n": 0,        # every Nth item (global count) -> 429
    "seed": 0,
    # whole request
    "reject_429_probability": 0.0,
    "reject_429_next": 0,         # the next N bulk requests -> 429
    "unavailable_503_probability": 0.0,
    "unavailable_503_next": 0,    # the next N bulk requests -> 503
    "max_content_length": DEFAULT_MAX_CONTENT,  # http.max_content_length
    # latency (bulk requests only)
    "latency": 0.0,
    "spike_seconds": 0.0,
    "spike_probability": 0.0,
    "spike_every_n": 0,
    # mapping rules "index_glob:field=type"
    "mappings": [],
    "health_status": "green",
    "gzip_responses": True,       # gzip answers when Accept-Encoding allows (plain HTTP)
    "max_skew_seconds": 300.0,
    # benchmarks: count documents, neither parse nor store them
    "sink": False,
}

MAPPING_TYPES = {"long", "integer", "short", "byte", "double", "float", "half_float",
                 "boolean", "keyword", "text", "date", "object", "ip"}


def es_error(etype, reason, status, **extra):
    cause = {"type": etype, "reason": reason}
    cause.update(extra)
    err = dict(cause)
    err["root_cause"] = [dict(cause)]
    return {"error": err, "status": status}


class HttpError(Exception):
    def __init__(self, status, body, headers=None, content_type="application/json"):
        super().__init__(status)
        self.status, self.body, self.headers = status, body, headers or {}
        self.content_type = content_type


def version_tuple(v):
    return tuple(int(x) for x in re.findall(r"\d+", v)[:3])


class Store:
    def __init__(self):
        self.lock = threading.Lock()
        self.indices = {}  # name -> {"uuid":..., "docs": {id: {...}}, "seq": n}

    def index(self, name):
        idx = self.indices.get(name)
        if idx is None:
            idx = {"uuid": base64.urlsafe_b64encode(os.urandom(16)).decode()[:22],
                   "docs": {}, "seq": 0}
            self.indices[name] = idx
        return idx


class State:
    def __init__(self, args):
        self.args = args
        self.defaults = dict(DEFAULTS)
        for k in DEFAULTS:
            v = getattr(args, k, None)
            if v is not None:
                self.defaults[k] = v if isinstance(v, list) else type(DEFAULTS[k])(v)
        self.config = Config(self.defaults)
        self.version = args.es_version
        self.distribution = args.distribution
        self.basic = dict(s.split(":", 1) for s in (args.basic or []))
        self.api_keys = dict(s.split(":", 1) for s in (args.api_key or []))
        self.verifier = None
        if args.sigv4:
            self.verifier = Verifier(args.sigv4, args.region, args.credentials or [],
                                     max_skew=self.defaults["max_skew_seconds"],
                                     require_content_sha256=(args.sigv4 == "aoss"))
        self.store = Store()
        self.lock = threading.Lock()
        self.item_counter = 0
        self.bulk_counter = 0
        self.stats = self._fresh_stats()

    @staticmethod
    def _fresh_stats():
        return {"bulk_calls": 0, "bulk_by_status": {}, "items_by_status": {},
                "items_by_action": {}, "gzip_calls": 0, "auth_failures": 0,
                "auth_failures_by_reason": {}, "requests": 0, "bytes_received": 0,
                "filtered_responses": 0}

    def bump(self, key, sub, n=1):
        with self.lock:
            d = self.stats[key]
            d[str(sub)] = d.get(str(sub), 0) + n

    # ---- version-dependent behaviour ----
    @property
    def is_opensearch(self):
        return self.distribution == "opensearch"

    @property
    def types_allowed(self):
        return not self.is_opensearch and version_tuple(self.version) < (8, 0, 0)

    @property
    def parse_exception_type(self):
        if not self.is_opensearch and version_tuple(self.version) >= (8, 8, 0):
            return "document_parsing_exception"
        return "mapper_parsing_exception"


# ---------------- mapping checks ----------------
def parse_mapping_rule(rule):
    m = re.match(r"^([^:]+):([^=]+)=(\w+)$", rule)
    if not m or m.group(3) not in MAPPING_TYPES:
        raise ValueError(f"mapping rule must be index_glob:field=type with type in "
                         f"{sorted(MAPPING_TYPES)}, got {rule!r}")
    return m.group(1), m.group(2), m.group(3)


def lookup_field(doc, path):
    """Values of a dotted field path (literal dotted keys too)."""
    if not isinstance(doc, dict):
        return []
    if path in doc:
        return [doc[path]]
    out = []
    head, _, rest = path.partition(".")
    if rest and head in doc:
        sub = doc[head]
        for s in (sub if isinstance(sub, list) else [sub]):
            out.extend(lookup_field(s, rest))
    return out


_NUM_RE = re.compile(r"^\s*[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?\s*$")
_DATE_RE = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def value_problem(value, ftype):
    """None when ES (with default coercion) would accept the value, else the
    caused_by (type, reason)."""
    if value is None:
        return None
    if isinstance(value, list):
        for v in value:
            p = value_problem(v, ftype)
            if p:
                return p
        return None
    if ftype == "object":
        if isinstance(value, dict):
            return None
        return ("concrete", None)
    if isinstance(value, dict):
        return ("illegal_argument_exception",
                "Can't get text on a START_OBJECT at 1:1" if ftype in ("keyword", "text")
                else "Current token (START_OBJECT) not numeric, can not use numeric value accessors")
    if ftype in ("long", "integer", "short", "byte", "double", "float", "half_float"):
        if isinstance(value, bool):
            return ("illegal_argument_exception",
                    "Current token (VALUE_%s) not numeric, can not use numeric value "
                    "accessors" % ("TRUE" if value else "FALSE"))
        if isinstance(value, (int, float)):
            return None
        if isinstance(value, str) and _NUM_RE.match(value):
            return None
        return ("number_format_exception", f'For input string: "{value}"')
    if ftype == "boolean":
        if isinstance(value, bool) or value in ("true", "false", ""):
            return None
        return ("illegal_argument_exception",
                f"Failed to parse value [{value}] as only [true] or [false] are allowed.")
    if ftype == "date":
        if isinstance(value, int) and not isinstance(value, bool):
            return None
        if isinstance(value, str) and (_DATE_RE.match(value) or value.isdigit()):
            return None
        return ("illegal_argument_exception",
                f"failed to parse date field [{value}] with format "
                "[strict_date_optional_time||epoch_millis]")
    if ftype == "ip":
        import ipaddress
        try:
            ipaddress.ip_address(str(value))
            return None
        except ValueError:
            return ("illegal_argument_exception", f"'{value}' is not an IP string literal.")
    return None  # keyword/text accept scalars


def preview(value):
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={v}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _segment_matches(pattern, key):
    return re.fullmatch(".*".join(map(re.escape, pattern.split("*"))), key) is not None


def _filter(value, paths, include):
    """Applies filter_path paths (lists of segments, none empty) to value.
    Returns (matched_anything, filtered_value)."""
    if isinstance(value, list):
        out, hit = [], False
        for v in value:
            h, fv = _filter(v, paths, include)
            hit = hit or h
            if include and h:
                out.append(fv)
            elif not include and fv != {}:
                out.append(fv)
        return hit, out
    if not isinstance(value, dict):
        return False, value
    out, hit = {}, False
    for k, v in value.items():
        whole, rest = False, []
        for p in paths:
            if p[0] == "**":
                rest.append(p)  # ** keeps matching deeper levels
                if len(p) == 1:
                    whole = True
                elif _segment_matches(p[1], k):
                    if len(p) == 2:
                        whole = True
                    else:
                        rest.append(p[2:])
            elif _segment_matches(p[0], k):
                if len(p) == 1:
                    whole = True
                else:
                    rest.append(p[1:])
        if include:
            if whole:
                out[k], hit = v, True
            elif rest:
                h, fv = _filter(v, rest, True)
                if h and fv not in ({}, []):
                    out[k], hit = fv, True
        else:
            if whole:
                hit = True
                continue
            if rest:
                h, fv = _filter(v, rest, False)
                hit = hit or h
                if isinstance(v, (dict, list)) and h and fv in ({}, []):
                    continue
                out[k] = fv
            else:
                out[k] = v
    return hit, out


def filter_path(obj, spec):
    """The response as ES shapes it for ?filter_path=spec."""
    includes, excludes = [], []
    for f in spec.split(","):
        f = f.strip()
        if not f:
            continue
        (excludes if f.startswith("-") else includes).append(f.lstrip("-").split("."))
    if includes:
        _, obj = _filter(obj, includes, True)
    if excludes:
        _, obj = _filter(obj, excludes, False)
    return obj


class Handler(PeerHandler):
    state = None

    # ---------------- helpers ----------------
    def answer(self, status, obj, headers=None):
        st = self.state
        hdrs = dict(headers or {})
        if not st.is_opensearch:
            hdrs.setdefault("X-elastic-product", "Elasticsearch")
        body = json.dumps(obj).encode()
        if (st.config.get("gzip_responses") and self.server.ssl_context is None
                and "gzip" in (self.headers.get("Accept-Encoding") or "").lower()
                and len(body) > 0):
            body = gzip.compress(body)
            hdrs["Content-Encoding"] = "gzip"
        self.send_bytes(status, body, "application/json", hdrs)

    def path_parts(self):
        url = urllib.parse.urlsplit(self.path)
        return url, [urllib.parse.unquote(p) for p in url.path.split("/") if p]

    # ---------------- routing ----------------
    def do_HEAD(self):  # noqa: N802
        self.route()

    def do_GET(self):  # noqa: N802
        self.route()

    def do_POST(self):  # noqa: N802
        self.route()

    def do_PUT(self):  # noqa: N802
        self.route()

    def do_DELETE(self):  # noqa: N802
        self.route()

    def route(self):
        url, parts = self.path_parts()
        if url.path in ("/_control", "/_peer/control", "/_peer/docs", "/_peer/stats",
                        "/_peer/reset"):
            return self.peer_endpoint(url)
        st = self.state
        with st.lock:
            st.stats["requests"] += 1
        try:
            body = self.read_body(limit=st.config.get("max_content_length"))
        except BodyTooLarge:
            # Netty's aggregator: 413 with an empty body
            return self.send_bytes(413, b"", "text/plain; charset=UTF-8")
        except ValueError:
            self.close_connection = True
            return self.answer(400, es_error("illegal_argument_exception", "bad chunked body", 400))
        try:
            self.authenticate(body)
            if parts and parts[-1] == "_bulk" and len(parts) <= 2:
                if self.command not in ("POST", "PUT"):
                    raise HttpError(405, {"error": f"Incorrect HTTP method for uri "
                                          f"[{url.path}] and method [{self.command}], "
                                          "allowed: [POST, PUT]", "status": 405})
                return self.bulk(url, parts[0] if len(parts) == 2 else None, body)
            if not parts and self.command in ("GET", "HEAD"):
                return self.answer(200, self.root_info())
            if parts == ["_cluster", "health"] and self.command == "GET":
                return self.answer(200, self.health())
            raise HttpError(400, {"error": f"no handler found for uri [{self.path}] "
                                  f"and method [{self.command}]", "status": 400})
        except HttpError as e:
            if e.content_type == "application/json":
                hdrs = dict(e.headers)
                if not st.is_opensearch:
                    hdrs.setdefault("X-elastic-product", "Elasticsearch")
                self.send_json(e.status, e.body, headers=hdrs)
            else:
                self.send_bytes(e.status, e.body, e.content_type, e.headers)

    # ---------------- auth ----------------
    def authenticate(self, body):
        st = self.state
        if st.verifier is not None:
            try:
                st.verifier.verify(self.command, self.path, self.headers.items(), body,
                                   scheme=self.scheme)
                return
            except SigV4Error as e:
                self.auth_failed(e.code)
                code = e.code if e.code.endswith("Exception") else e.code + "Exception"
                if e.code == "MissingAuthenticationToken":
                    msg = (f"User: anonymous is not authorized to perform: "
                           f"{st.args.sigv4}:ESHttp{self.command.capitalize()}")
                else:
                    msg = e.message
                raise HttpError(403, {"message": msg}, {"x-amzn-ErrorType": code})
        if not st.basic and not st.api_keys:
            return
        auth = self.headers.get("Authorization") or ""
        scheme, _, cred = auth.partition(" ")
        user = None
        if scheme.lower() == "basic" and st.basic:
            try:
                u, _, p = base64.b64decode(cred.strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                u, p = "", None
            if st.basic.get(u) == p and p is not None:
                return
            user, reason = u, "bad_basic"
        elif scheme.lower() == "apikey" and st.api_keys:
            try:
                kid, _, key = base64.b64decode(cred.strip(), validate=True).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                kid, key = "", None
            if st.api_keys.get(kid) == key and key is not None:
                return
            user, reason = None, "bad_api_key"
        else:
            reason = "missing"
        self.auth_failed(reason)
        url = urllib.parse.urlsplit(self.path).path
        if st.is_opensearch:
            raise HttpError(401, b"Unauthorized", {"WWW-Authenticate": 'Basic realm="OpenSearch Security"'},
                            content_type="text/plain; charset=UTF-8")
        challenges = []
        if st.basic:
            challenges.append('Basic realm="security" charset="UTF-8"')
        if st.api_keys:
            challenges.append("ApiKey")
        if reason == "missing":
            text = f"missing authentication credentials for REST request [{url}]"
        elif reason == "bad_basic":
            text = f"unable to authenticate user [{user}] for REST request [{url}]"
        else:
            text = "unable to authenticate with provided credentials and anonymous " \
                   "access is not allowed for this request"
        body = es_error("security_exception", text, 401,
                        header={"WWW-Authenticate": challenges})
        raise HttpError(401, body, {"WWW-Authenticate": ", ".join(challenges)})

    def auth_failed(self, reason):
        st = self.state
        with st.lock:
            st.stats["auth_failures"] += 1
        st.bump("auth_failures_by_reason", reason)

    # ---------------- info endpoints ----------------
    def root_info(self):
        st = self.state
        if st.is_opensearch:
            version = {"distribution": "opensearch", "number": st.version,
                       "build_type": "tar", "build_hash": "0" * 40,
                       "build_date": "2023-10-13T02:55:55.511945994Z",
                       "build_snapshot": False, "lucene_version": "9.7.0",
                       "minimum_wire_compatibility_version": "7.10.0",
                       "minimum_index_compatibility_version": "7.0.0"}
            tagline = "The OpenSearch Project: https://opensearch.org/"
        else:
            version = {"number": st.version, "build_flavor": "default",
                       "build_type": "docker", "build_hash": "0" * 40,
                       "build_date": "2023-11-04T10:04:57.184859352Z",
                       "build_snapshot": False, "lucene_version": "9.8.0",
                       "minimum_wire_compatibility_version": "7.17.0",
                       "minimum_index_compatibility_version": "7.0.0"}
            tagline = "You Know, for Search"
        return {"name": "ingestd-es-peer", "cluster_name": "ingestd-test",
                "cluster_uuid": "ingestd-test-peer-uuid", "version": version,
                "tagline": tagline}

    def health(self):
        st = self.state
        with st.store.lock:
            n = len(st.store.indices)
        status = st.config.get("health_status")
        return {"cluster_name": "ingestd-test", "status": status, "timed_out": False,
                "number_of_nodes": 1, "number_of_data_nodes": 1,
                "active_primary_shards": n, "active_shards": n,
                "relocating_shards": 0, "initializing_shards": 0,
                "unassigned_shards": n if status != "green" else 0,
                "delayed_unassigned_shards": 0, "number_of_pending_tasks": 0,
                "number_of_in_flight_fetch": 0, "task_max_waiting_in_queue_millis": 0,
                "active_shards_percent_as_number": 100.0 if status == "green" else 50.0}

    # ---------------- bulk ----------------
    def bulk(self, url, default_index, raw):
        st = self.state
        t0 = time.monotonic()
        cfg = st.config.snapshot()
        with st.lock:
            st.stats["bulk_calls"] += 1
            st.stats["bytes_received"] += len(raw)
            st.bulk_counter += 1
            call_no = st.bulk_counter
            delay = Latency.delay_for(cfg, call_no, st.config.rng)
        try:
            status, obj = self.bulk_inner(url, default_index, raw, cfg)
        except HttpError as e:
            st.bump("bulk_by_status", e.status)
            sleep_for(delay)
            raise
        st.bump("bulk_by_status", status)
        sleep_for(delay)
        if "took" in obj:
            obj["took"] = int((time.monotonic() - t0) * 1000)
        spec = dict(urllib.parse.parse_qsl(url.query)).get("filter_path")
        if spec:
            with st.lock:
                st.stats["filtered_responses"] += 1
            obj = filter_path(obj, spec)
        self.answer(status, obj)

    def bulk_inner(self, url, default_index, raw, cfg):
        st = self.state
        ctype = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        if ctype not in ("application/x-ndjson", "application/json",
                         "application/vnd.elasticsearch+x-ndjson",
                         "application/vnd.elasticsearch+json"):
            raise HttpError(406, {"error": f"Content-Type header [{self.headers.get('Content-Type') or ''}] "
                                  "is not supported", "status": 406})
        enc = (self.headers.get("Content-Encoding") or "").strip().lower()
        body = raw
        if enc in ("gzip", "x-gzip"):
            with st.lock:
                st.stats["gzip_calls"] += 1
            try:
                d = zlib.decompressobj(16 + zlib.MAX_WBITS)
                body = d.decompress(raw, cfg["max_content_length"] + 1)
                if len(body) > cfg["max_content_length"]:
                    raise HttpError(413, b"", content_type="text/plain; charset=UTF-8")
                if not d.eof:
                    raise zlib.error("truncated gzip stream")
            except zlib.error as e:
                raise HttpError(400, es_error("illegal_argument_exception",
                                              f"Failed to decompress request body: {e}", 400))
        elif enc and enc != "identity":
            raise HttpError(400, es_error("illegal_argument_exception",
                                          f"Unsupported Content-Encoding [{enc}]", 400))

        q = urllib.parse.parse_qsl(url.query, keep_blank_values=True)
        for k, _ in q:
            if k not in BULK_PARAMS:
                raise HttpError(400, es_error(
                    "illegal_argument_exception",
                    f"request [{url.path}] contains unrecognized parameter: [{k}]", 400))
        qd = dict(q)

        # whole-request faults first (the node rejects before parsing items)
        unavailable = st.config.fault("unavailable_503_next", "unavailable_503_probability")
        reject = not unavailable and st.config.fault("reject_429_next", "reject_429_probability")
        if unavailable:
            raise HttpError(503, es_error("cluster_block_exception",
                                          "blocked by: [SERVICE_UNAVAILABLE/2/no master];", 503))
        if reject:
            n = len(body)
            raise HttpError(429, es_error(
                "es_rejected_execution_exception",
                f"rejected execution of coordinating operation [coordinating_and_primary_bytes={n}, "
                f"replica_bytes=0, all_bytes={n}, coordinating_operation_bytes={n}, "
                f"max_coordinating_and_primary_bytes={n}]", 429))

        if not body:
            raise HttpError(400, es_error("action_request_validation_exception",
                                          "Validation Failed: 1: no requests added;", 400))
        if not body.endswith(b"\n"):
            raise HttpError(400, es_error("illegal_argument_exception",
                                          "The bulk request must be terminated by a newline [\\n]", 400))
        if cfg["sink"]:
            return self.sink(body, default_index)
        lines = body.split(b"\n")[:-1]
        ops = self.parse_ops(lines, default_index, qd)
        items = []
        for op in ops:
            items.append(self.execute(op, cfg))
        errors = any("error" in list(it.values())[0] for it in items)
        return 200, {"took": 0, "errors": errors, "items": items}

    def sink(self, body, default_index):
        """sink mode (benchmarks): every action line is taken to be a create or
        index with a source line after it, answered 201 without reading either;
        the documents are counted (stats "sink_documents"), not stored. A stand-in
        fast enough not to be what a benchmark measures."""
        n = body.count(b"\n") // 2
        st = self.state
        with st.lock:
            st.stats["sink_documents"] = st.stats.get("sink_documents", 0) + n
        item = {"create": {"_index": default_index or "bench", "result": "created",
                           "status": 201}}
        return 200, {"took": 0, "errors": False, "items": [item] * n}

    def parse_ops(self, lines, default_index, qd):
        st = self.state
        ops, i, n = [], 0, len(lines)
        while i < n:
            line = lines[i].rstrip(b"\r")
            i += 1
            if not line.strip():
                continue
            lineno = i
            try:
                action = json.loads(line)
            except ValueError:
                raise HttpError(400, es_error(
                    "illegal_argument_exception" if st.is_opensearch else "x_content_parse_exception",
                    f"[1:1] Malformed action/metadata line [{lineno}], expected START_OBJECT "
                    "but found [VALUE_STRING]", 400))
            if not isinstance(action, dict) or len(action) != 1:
                raise HttpError(400, es_error(
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{lineno}], expected START_OBJECT or "
                    "END_OBJECT but found [START_ARRAY]", 400))
            (name, meta), = action.items()
            if name not in ("index", "create", "delete", "update"):
                raise HttpError(400, es_error(
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{lineno}], expected field [create], "
                    f"[delete], [index] or [update] but found [{name}]", 400))
            if not isinstance(meta, dict):
                raise HttpError(400, es_error(
                    "illegal_argument_exception",
                    f"Malformed action/metadata line [{lineno}], expected START_OBJECT but "
                    "found [VALUE_STRING]", 400))
            for k in meta:
                if k == "_type" and st.types_allowed:
                    continue
                if k not in ACTION_PARAMS:
                    raise HttpError(400, es_error(
                        "illegal_argument_exception",
                        f"Action/metadata line [{lineno}] contains an unknown parameter [{k}]", 400))
            index = meta.get("_index") or default_index
            if not index:
                raise HttpError(400, es_error("action_request_validation_exception",
                                              "Validation Failed: 1: index is missing;", 400))
            op = {"action": name, "index": index, "id": meta.get("_id"),
                  "op_type": meta.get("op_type"), "source": None, "raw": None,
                  "pipeline": meta.get("pipeline", qd.get("pipeline"))}
            if op["id"] is not None:
                op["id"] = str(op["id"])
            if name != "delete":
                if i >= n:
                    raise HttpError(400, es_error(
                        "action_request_validation_exception",
                        "Validation Failed: 1: source is missing;", 400))
                op["raw"] = lines[i].rstrip(b"\r")
                i += 1
            if name == "index" and op["op_type"] == "create":
                op["action_effective"] = "create"
            ops.append(op)
        if not ops:
            raise HttpError(400, es_error("action_request_validation_exception",
                                          "Validation Failed: 1: no requests added;", 400))
        return ops

    def item_base(self, op, idx_name, doc_id):
        base = {"_index": idx_name, "_id": doc_id}
        if self.state.types_allowed:
            base["_type"] = "_doc"
        return base

    def execute(self, op, cfg):
        st = self.state
        action = op["action"]
        effective = op.get("action_effective", action)
        idx_name = op["index"]
        doc_id = op["id"]
        if doc_id is None and action in ("index", "create"):
            doc_id = base64.urlsafe_b64encode(uuid.uuid4().bytes[:15]).decode()
        st.bump("items_by_action", action)

        def done(status, body):
            st.bump("items_by_status", status)
            body = dict(self.item_base(op, idx_name, doc_id), **body)
            body["status"] = status
            return {effective: body}

        if doc_id is None and action in ("update", "delete"):
            return done(400, {"error": {"type": "action_request_validation_exception",
                                        "reason": "Validation Failed: 1: id is missing;"}})

        with st.lock:
            st.item_counter += 1
            k = st.item_counter
            rejected = (cfg["item_429_every_n"] > 0 and k % cfg["item_429_every_n"] == 0) or \
                (cfg["item_429_probability"] > 0 and st.config.rng.random() < cfg["item_429_probability"])
        if rejected:
            return done(429, {"error": {
                "type": "es_rejected_execution_exception",
                "reason": "rejected execution of org.elasticsearch.action.support.replication."
                          "TransportWriteAction$1/WrappedActionListener{...} on "
                          "EsThreadPoolExecutor[name = ingestd-es-peer/write, queue capacity = "
                          "10000, task execution EWMA = 1ms, total task execution time = 1s, "
                          "active threads = 8, queued tasks = 10000, completed tasks = 1]"}})

        source = None
        if op["raw"] is not None:
            try:
                source = json.loads(op["raw"])
                if not isinstance(source, dict):
                    raise ValueError("not an object")
            except (ValueError, UnicodeDecodeError) as e:
                return done(400, {"error": {
                    "type": st.parse_exception_type,
                    "reason": "failed to parse",
                    "caused_by": {"type": "x_content_parse_exception" if not st.is_opensearch
                                  else "json_parse_exception", "reason": str(e)}}})

        if action in ("index", "create"):
            problem = self.mapping_problem(idx_name, doc_id, source, op["raw"], cfg)
            if problem:
                return done(400, {"error": problem})

        with st.store.lock:
            idx = st.store.index(idx_name)
            cur = idx["docs"].get(doc_id)
            if effective == "create" and cur is not None:
                return done(409, {"error": {
                    "type": "version_conflict_engine_exception",
                    "reason": f"[{doc_id}]: version conflict, document already exists "
                              f"(current version [{cur['_version']}])",
                    "index_uuid": idx["uuid"], "shard": "0", "index": idx_name}})
            if action == "delete":
                idx["seq"] += 1
                if cur is None:
                    return done(404, self.ok_body(idx, "not_found", 1))
                del idx["docs"][doc_id]
                return done(200, self.ok_body(idx, "deleted", cur["_version"] + 1))
            if action == "update":
                if not isinstance(source, dict) or not ("doc" in source or "upsert" in source):
                    return done(400, {"error": {
                        "type": "action_request_validation_exception",
                        "reason": "Validation Failed: 1: script or doc is missing;"}})
                if cur is None:
                    if source.get("doc_as_upsert") and "doc" in source:
                        new = source["doc"]
                    elif "upsert" in source:
                        new = source["upsert"]
                    else:
                        return done(404, {"error": {
                            "type": "document_missing_exception",
                            "reason": f"[{doc_id}]: document missing",
                            "index_uuid": idx["uuid"], "shard": "0", "index": idx_name}})
                    idx["seq"] += 1
                    idx["docs"][doc_id] = {"_source": new, "_version": 1}
                    return done(201, self.ok_body(idx, "created", 1))
                merged = dict(cur["_source"])
                merged.update(source.get("doc") or {})
                if merged == cur["_source"]:
                    return done(200, self.ok_body(idx, "noop", cur["_version"]))
                idx["seq"] += 1
                cur["_source"] = merged
                cur["_version"] += 1
                return done(200, self.ok_body(idx, "updated", cur["_version"]))
            # index / create
            idx["seq"] += 1
            if cur is None:
                idx["docs"][doc_id] = {"_source": source, "_version": 1}
                return done(201, self.ok_body(idx, "created", 1))
            cur["_source"] = source
            cur["_version"] += 1
            return done(200, self.ok_body(idx, "updated", cur["_version"]))

    @staticmethod
    def ok_body(idx, result, version):
        return {"_version": version, "result": result,
                "_shards": {"total": 2, "successful": 1, "failed": 0},
                "_seq_no": idx["seq"] - 1, "_primary_term": 1}

    def mapping_problem(self, idx_name, doc_id, source, raw, cfg):
        st = self.state
        for rule in cfg["mappings"]:
            glob, field, ftype = parse_mapping_rule(rule)
            if not fnmatch.fnmatchcase(idx_name, glob):
                continue
            for value in lookup_field(source, field):
                p = value_problem(value, ftype)
                if not p:
                    continue
                if p[0] == "concrete":
                    return {"type": st.parse_exception_type,
                            "reason": f"object mapping for [{field}] tried to parse field "
                                      f"[{field}] as object, but found a concrete value"}
                leaf = field.rsplit(".", 1)[-1]
                col = (raw or b"").find(f'"{leaf}"'.encode()) + 1
                reason = (f"failed to parse field [{field}] of type [{ftype}] in document "
                          f"with id '{doc_id}'. Preview of field's value: '{preview(value)}'")
                if st.parse_exception_type == "document_parsing_exception":
                    reason = f"[1:{max(col, 1) + len(leaf) + 3}] " + reason
                return {"type": st.parse_exception_type, "reason": reason,
                        "caused_by": {"type": p[0], "reason": p[1]}}
        return None

    # ---------------- peer endpoints ----------------
    def peer_endpoint(self, url):
        body = self.control_body()
        if body is None:
            return
        st = self.state
        q = urllib.parse.parse_qs(url.query)
        if url.path == "/_peer/docs":
            glob = (q.get("index") or ["*"])[0]
            docs = []
            with st.store.lock:
                for name in sorted(st.store.indices):
                    if fnmatch.fnmatchcase(name, glob):
                        for did, d in st.store.indices[name]["docs"].items():
                            docs.append({"_index": name, "_id": did, "_version": d["_version"],
                                         "_source": d["_source"]})
            return self.send_json(200, {"count": len(docs), "docs": docs})
        if url.path == "/_peer/stats":
            with st.lock:
                stats = json.loads(json.dumps(st.stats))
            with st.store.lock:
                stats["indices"] = {n: len(i["docs"]) for n, i in st.store.indices.items()}
            if st.verifier:
                stats["credentials"] = st.verifier.describe()
            stats["tls_failures"] = self.server.tls_failures
            return self.send_json(200, stats)
        if url.path == "/_peer/reset":
            opts = json.loads(body or b"{}")
            with st.store.lock:
                st.store.indices = {}
            with st.lock:
                st.stats = st._fresh_stats()
                st.item_counter = 0
                st.bulk_counter = 0
            if opts.get("faults"):
                st.config.update(st.defaults)
            return self.send_json(200, {"reset": True})
        # /_control, /_peer/control
        if self.command == "GET":
            return self.send_json(200, st.config.snapshot())
        try:
            changes = json.loads(body or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("control body must be a JSON object")
            apply_actions(st, changes)
            for rule in changes.get("mappings", []) or []:
                parse_mapping_rule(rule)
            if changes.get("health_status", "green") not in ("green", "yellow", "red"):
                raise ValueError("health_status: green | yellow | red")
            unknown = st.config.update(changes)
            if unknown:
                return self.send_json(400, {"error": f"unknown control fields {unknown}"})
            if "item_429_every_n" in changes:
                with st.lock:  # "every Nth" counts from the change
                    st.item_counter = 0
            if "max_skew_seconds" in changes and st.verifier:
                st.verifier.max_skew = float(changes["max_skew_seconds"])
        except (ValueError, TypeError) as e:
            return self.send_json(400, {"error": str(e)})
        return self.send_json(200, st.config.snapshot())


def apply_actions(st, changes):
    """Control fields that are actions rather than settings."""
    for key in ("add_credentials", "remove_access_keys", "expire_access_keys",
                "unexpire_access_keys"):
        vals = changes.pop(key, None) or []
        if vals and st.verifier is None:
            raise ValueError(f"{key}: peer not started with --sigv4")
        for v in vals:
            {"add_credentials": lambda x: st.verifier.add(x),
             "remove_access_keys": lambda x: st.verifier.remove(x),
             "expire_access_keys": lambda x: st.verifier.expire(x, True),
             "unexpire_access_keys": lambda x: st.verifier.expire(x, False)}[key](v)
    for v in changes.pop("add_basic", None) or []:
        u, _, p = v.partition(":")
        st.basic[u] = p
    for v in changes.pop("add_api_keys", None) or []:
        i, _, k = v.partition(":")
        st.api_keys[i] = k


def parse_args(argv):
    p = argparse.ArgumentParser(description="Local Elasticsearch/OpenSearch _bulk peer")
    p.add_argument("--port", type=int, default=0)
    p.add_argument("--es-version", default="8.11.0",
                   help="version number reported and emulated (7.17.0, 8.11.0, 2.11.0...)")
    p.add_argument("--distribution", choices=("elasticsearch", "opensearch"),
                   default="elasticsearch")
    p.add_argument("--basic", action="append", metavar="USER:PASS")
    p.add_argument("--api-key", action="append", metavar="ID:KEY",
                   help="accepted as 'Authorization: ApiKey base64(ID:KEY)'")
    p.add_argument("--sigv4", choices=("es", "aoss"))
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--credentials", action="append", metavar="AKID:SECRET[:TOKEN]")
    p.add_argument("--mapping", action="append", dest="mappings",
                   metavar="INDEX_GLOB:FIELD=TYPE")
    p.add_argument("--control-file", metavar="FILE")
    p.add_argument("--tls-cert")
    p.add_argument("--tls-key")
    p.add_argument("--tls-client-ca", help="require client certificates signed by this CA (PEM)")
    p.add_argument("--verbose", action="store_true")
    for k, v in DEFAULTS.items():
        if k == "mappings":
            continue
        if isinstance(v, bool):
            p.add_argument("--" + k.replace("_", "-"), dest=k, default=None,
                           type=lambda s: s.lower() in ("1", "true", "yes", "on"))
        else:
            p.add_argument("--" + k.replace("_", "-"), dest=k, type=type(v), default=None,
                           help=f"fault default (control field {k}, default {v!r})")
    args = p.parse_args(argv)
    if args.sigv4 and not args.credentials:
        p.error("--sigv4 needs at least one --credentials AKID:SECRET[:TOKEN]")
    for rule in args.mappings or []:
        try:
            parse_mapping_rule(rule)
        except ValueError as e:
            p.error(str(e))
    if args.distribution == "opensearch" and args.es_version == "8.11.0":
        args.es_version = "2.11.0"
    return args


def main(argv=None):
    args = parse_args(sys.argv[1:] if argv is None else argv)
    state = State(args)
    if args.control_file:
        with open(args.control_file) as f:
            ctl = json.load(f)
        apply_actions(state, ctl)
        unknown = state.config.update(ctl)
        if unknown:
            sys.exit(f"unknown control fields {unknown}")
        state.defaults.update({k: v for k, v in ctl.items() if k in DEFAULTS})
    Handler.state = state
    Handler.verbose = args.verbose
    server = PeerServer(args.port, Handler, args.tls_cert, args.tls_key, args.tls_client_ca)
    return serve(server, "es_peer")


if __name__ == "__main__":
    sys.exit(main())
