"""Plumbing shared by the local test peers (firehose_peer.py, es_peer.py):
threaded HTTP/1.1 keep-alive server bound to 127.0.0.1, request body reading
(Content-Length or chunked), JSON answers, optional TLS, token buckets,
latency injection, clean SIGTERM exit.
TLS: --tls-cert/--tls-key, and --tls-client-ca to require client certificates. Standard library only."""

import http.server
import ipaddress
import json
import random
import signal
import ssl
import sys
import threading
import time

MAX_BODY = 256 * 1024 * 1024  # hard cap; bodies above are never read


class BodyTooLarge(Exception):
    pass


class PeerServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, port, handler, tls_cert=None, tls_key=None, tls_client_ca=None):
        super().__init__(("127.0.0.1", port), handler)
        self.ssl_context = None
        self.tls_failures = 0  # handshakes that failed (no or bad client certificate...)
        if tls_cert:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(tls_cert, tls_key)
            if tls_client_ca:
                # Mutual TLS: a client certificate signed by this CA is required.
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(cafile=tls_client_ca)
            self.ssl_context = ctx

    def finish_request(self, request, client_address):
        # Runs in the per-connection thread: the TLS handshake of one slow
        # client never blocks accept().
        if self.ssl_context is None:
            return super().finish_request(request, client_address)
        try:
            tls = self.ssl_context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            self.tls_failures += 1
            return
        try:
            self.RequestHandlerClass(tls, client_address, self)
        finally:
            try:
                tls.close()
            except OSError:
                pass


class PeerHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "ingestd-test-peer"
    sys_version = ""
    verbose = False

    def log_message(self, fmt, *args):  # noqa: N802 (stdlib name)
        if self.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), fmt % args))

    @property
    def scheme(self):
        return "https" if self.server.ssl_context is not None else "http"

    def is_loopback(self):
        try:
            return ipaddress.ip_address(self.client_address[0]).is_loopback
        except ValueError:
            return False

    def control_body(self):
        """The body of a call to a peer's control endpoint, or None once it
        was answered: 403 from anywhere but loopback, 413 over 1 MiB."""
        if not self.is_loopback():
            self.send_json(403, {"error": "control endpoints are loopback only"})
            return None
        try:
            return self.read_body(limit=1 << 20)
        except BodyTooLarge:
            self.send_json(413, {"error": "too large"})
            return None

    def declared_length(self):
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            return None
        try:
            return int(self.headers.get("Content-Length", "0") or 0)
        except ValueError:
            return 0

    def read_body(self, limit=MAX_BODY):
        """The raw request body; BodyTooLarge when it exceeds limit (the
        body is still drained when it is not absurdly big, so keep-alive
        survives a rejected request)."""
        te = self.headers.get("Transfer-Encoding", "")
        if "chunked" in te.lower():
            chunks, total = [], 0
            while True:
                line = self.rfile.readline(65537)
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                total += size
                if total > MAX_BODY:
                    self.close_connection = True
                    raise BodyTooLarge(total)
                chunks.append(self.rfile.read(size))
                self.rfile.readline(3)
            body = b"".join(chunks)
            if len(body) > limit:
                raise BodyTooLarge(len(body))
            return body
        n = self.declared_length()
        if n > limit:
            if n <= MAX_BODY:
                remaining = n
                while remaining:
                    got = self.rfile.read(min(remaining, 1 << 20))
                    if not got:
                        break
                    remaining -= len(got)
            else:
                self.close_connection = True
            raise BodyTooLarge(n)
        return self.rfile.read(n) if n else b""

    def send_bytes(self, status, body, content_type="application/json",
                   headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_json(self, status, obj, content_type="application/json",
                  headers=None):
        self.send_bytes(status, json.dumps(obj).encode(), content_type, headers)


class TokenBucket:
    """rate tokens per second, burst = one second's worth (at least 1)."""

    def __init__(self, rate, clock=time.monotonic):
        self.rate = float(rate)
        self.capacity = max(1.0, self.rate)
        self.tokens = self.capacity
        self.clock = clock
        self.stamp = clock()
        self.lock = threading.Lock()

    def _refill(self):
        now = self.clock()
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def take(self, n=1.0):
        with self.lock:
            self._refill()
            if self.tokens >= n:
                self.tokens -= n
                return True
            return False


class Latency:
    """Fixed latency plus spikes (probability or every Nth call)."""

    @staticmethod
    def delay_for(cfg, call_no, rng):
        d = float(cfg.get("latency", 0) or 0)
        spike = float(cfg.get("spike_seconds", 0) or 0)
        if spike:
            every = int(cfg.get("spike_every_n", 0) or 0)
            prob = float(cfg.get("spike_probability", 0) or 0)
            if (every and call_no % every == 0) or (prob and rng.random() < prob):
                d += spike
        return d


class Config:
    """Mutable fault-injection settings with type-checked updates."""

    def __init__(self, defaults):
        self._types = {k: type(v) for k, v in defaults.items()}
        self._values = dict(defaults)
        self.lock = threading.Lock()
        self.rng = random.Random(defaults.get("seed", 0))

    def snapshot(self):
        with self.lock:
            return dict(self._values)

    def update(self, changes):
        """Returns a list of unknown keys (nothing is applied when any)."""
        unknown = [k for k in changes if k not in self._types]
        if unknown:
            return unknown
        with self.lock:
            for k, v in changes.items():
                t = self._types[k]
                if t is float and isinstance(v, (int, float)):
                    v = float(v)
                elif t is int and isinstance(v, bool):
                    v = int(v)
                elif t is list and v is None:
                    v = []
                if not isinstance(v, t):
                    raise TypeError(f"{k}: expected {t.__name__}")
                self._values[k] = v
                if k == "seed":
                    self.rng.seed(v)
        return []

    def get(self, key):
        with self.lock:
            return self._values[key]

    def fault(self, next_key, probability_key):
        """Whether a fault happens now: one of the `next_key` countdown (which
        it uses up), else with `probability_key`'s probability."""
        with self.lock:
            if self._values[next_key] > 0:
                self._values[next_key] -= 1
                return True
            p = self._values[probability_key]
            return bool(p) and self.rng.random() < p


def serve(server, name):
    """Print the listening line, serve until SIGTERM/SIGINT, exit 0."""
    def stop(signum, frame):
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    host, port = server.server_address[:2]
    print(f"listening on {host}:{port}", flush=True)
    try:
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()
    sys.stderr.write(f"{name}: stopped\n")
    return 0


def sleep_for(seconds):
    if seconds > 0:
        time.sleep(seconds)
