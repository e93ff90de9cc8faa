"""Shared pieces of the benchmarks: build, start servers pinned to a core, run
wrk pinned to the other, read RSS and CPU time. Loopback only; every process
started here is stopped here."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.environ.get("BENCH_BUILD", os.path.join(ROOT, "build"))
LUA = os.path.join(ROOT, "bench", "lib", "post.lua")
SERVER_CPU = os.environ.get("BENCH_SERVER_CPU", "0")
LOAD_CPU = os.environ.get("BENCH_LOAD_CPU", "1")

# nginx's TLS settings that match ingestd's (OpenSSL's defaults: session
# tickets on, with OpenSSL's own rotating key; the server-side session cache
# on, SSL_SESSION_CACHE_MAX_SIZE_DEFAULT = 20480 entries, 300 s lifetime).
# nginx's own defaults differ: `ssl_session_cache none` stores no session.
NGINX_TLS = """
    ssl_certificate %(cert)s;
    ssl_certificate_key %(key)s;
    ssl_protocols TLSv1.2 TLSv1.3;
    ssl_session_cache builtin:20480;
    ssl_session_timeout 300s;
    ssl_session_tickets on;
"""


def build_release():
    subprocess.run(["make", "-C", ROOT, "build"], check=True, stdout=subprocess.DEVNULL)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=20):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError("nothing listens on %d" % port)


def proc_stat(pid):
    """(rss_bytes, cpu_seconds) of a process."""
    with open("/proc/%d/status" % pid) as f:
        rss = int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1)) * 1024
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    cpu = (int(fields[11]) + int(fields[12])) / ticks
    return rss, cpu


def make_pki(d):
    """A throwaway CA and a server certificate for localhost / 127.0.0.1 in d
    (tests/e2e/pki.py's recipe: EC P-256). Returns {"ca", "cert", "key"}: paths."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
    import pki
    pki.make_ca(d, "ca")
    pki.make_cert(d, "server", "ca", pki.SERVER_EXT, cn="localhost")
    return {"ca": os.path.join(d, "ca.pem"), "cert": os.path.join(d, "server.pem"),
            "key": os.path.join(d, "server.key")}


def wrk(port, path, connections, seconds, body=None, env_extra=None, threads=1, https=False,
        headers=(), script=LUA):
    """wrk on LOAD_CPU; https=True: an https:// URL (wrk's OpenSSL client, no
    certificate check); headers: extra "Name: value" strings (-H); script: the
    wrk Lua script (bench/lib/post.lua; another one must print its WRK_JSON
    summary line)."""
    env = dict(os.environ)
    if body is not None:
        env["BODY"] = body
    env.update(env_extra or {})
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t%d" % threads, "-c%d" % connections,
           "-d%ds" % seconds, "--timeout", "10s", "-s", script]
    for h in headers:
        cmd += ["-H", h]
    cmd.append("%s://127.0.0.1:%d%s" % ("https" if https else "http", port, path))
    import resource
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    m = re.search(r"WRK_JSON (\{.*\})", out)
    if not m:
        raise RuntimeError("wrk printed no summary:\n" + out)
    r = json.loads(m.group(1))
    h = re.search(r"WRK_HIST (\S*)", out)
    if h:  # env WRK_HIST=1: {latency us: count}
        r["hist"] = {int(v): int(n) for v, n in
                     (pair.split(":") for pair in h.group(1).split(",") if pair)}
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    # How busy the load generator's core was: near 1.0, wrk (not the server)
    # may be what limits req/s.
    r["wrk_busy"] = ((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
                     / (r["duration_us"] / 1e6))
    return r


def pooled_percentile(hists, pct):
    """The pct percentile (us) of the requests of several runs together
    (wrk's WRK_HIST histograms): one figure from all their requests, not a
    median of per-run percentiles, each of which rests on few slow requests."""
    pooled = {}
    for h in hists:
        for v, n in h.items():
            pooled[v] = pooled.get(v, 0) + n
    total = sum(pooled.values())
    if total == 0:
        return None
    need, seen = pct / 100.0 * total, 0
    for v in sorted(pooled):
        seen += pooled[v]
        if seen >= need:
            return v
    return max(pooled)


class AcceptCounter:
    """Connections a process accepts while this runs: `perf stat` on the
    syscalls:sys_exit_accept4 tracepoint with ret >= 0 (nginx and libuv both
    accept with accept4), every thread of the pid. count() is None where perf
    or the tracepoint is not available."""

    def __init__(self, pid):
        self.p = None
        try:
            self.p = subprocess.Popen(
                ["perf", "stat", "-x,", "-e", "syscalls:sys_exit_accept4", "--filter",
                 "ret >= 0", "-p", str(pid)], stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE, text=True)
        except OSError:
            return
        time.sleep(0.3)  # perf attaches

    def count(self):
        if self.p is None:
            return None
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGINT)
        try:
            err = self.p.communicate(timeout=10)[1]
        except subprocess.TimeoutExpired:
            self.p.kill()
            self.p.wait()
            return None
        m = re.search(r"^(\d+),,syscalls:sys_exit_accept4", err, re.M)
        return int(m.group(1)) if m else None


class ServerHellos:
    """Counts the TLS ServerHellos sent from 127.0.0.1:port while it runs,
    from a packet socket on lo (needs root): "full" handshakes, and
    "resumed" ones -- a TLS 1.3 ServerHello that accepts a PSK (the
    pre_shared_key extension, 41). A server-independent check of what a
    client resumed. Reads the first bytes of each server -> client segment
    that starts a handshake record; loses packets under load (a sample,
    not a count). counts() is None where the socket cannot be opened."""

    def __init__(self, port):
        import threading
        self.port = port
        self.counts_ = {"full": 0, "resumed": 0, "tls12": 0}
        self.stop_ = False
        try:
            self.sock = socket.socket(socket.AF_PACKET, socket.SOCK_DGRAM, socket.htons(0x0800))
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32 << 20)
            self.sock.bind(("lo", 0))
            self.sock.settimeout(0.2)
        except OSError:
            self.sock = None
            return
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop_:
            try:
                pkt, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            if addr[2] == socket.PACKET_OUTGOING:
                continue  # lo shows each packet twice
            self._packet(pkt)

    def _packet(self, pkt):
        ihl = (pkt[0] & 0x0F) * 4
        if len(pkt) < ihl + 20 or pkt[9] != 6:
            return
        tcp = pkt[ihl:]
        if int.from_bytes(tcp[0:2], "big") != self.port:
            return
        data = tcp[(tcp[12] >> 4) * 4:]
        # record: type 22, version, length; handshake: type 2 (ServerHello)
        if len(data) < 44 or data[0] != 0x16 or data[5] != 0x02:
            return
        p = 9 + 2 + 32  # record + handshake headers, legacy_version, random
        p += 1 + data[p]  # session id
        p += 3  # cipher suite, compression
        if p + 2 > len(data):
            return
        end = min(len(data), p + 2 + int.from_bytes(data[p:p + 2], "big"))
        p += 2
        exts = set()
        while p + 4 <= end:
            exts.add(int.from_bytes(data[p:p + 2], "big"))
            p += 4 + int.from_bytes(data[p + 2:p + 4], "big")
        if 43 not in exts:  # no supported_versions: TLS 1.2 or older
            self.counts_["tls12"] += 1
        elif 41 in exts:
            self.counts_["resumed"] += 1
        else:
            self.counts_["full"] += 1

    def counts(self):
        if self.sock is None:
            return None
        self.stop_ = True
        self.thread.join()
        self.sock.close()
        return dict(self.counts_)


class Process:
    """A process pinned to `cpu` (a taskset list). idle=True runs it under
    SCHED_IDLE: it gets only CPU time nothing else wants, so a stand-in for a
    remote service (a test peer) never takes time from the server or wrk."""

    def __init__(self, cmd, cpu=SERVER_CPU, idle=False, **kw):
        prefix = ["chrt", "--idle", "0"] if idle else []
        self.p = subprocess.Popen(["taskset", "-c", cpu] + prefix + cmd, **kw)

    @property
    def pid(self):
        return self.p.pid

    def stop(self):
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
            try:
                self.p.wait(30)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()


class Nginx:
    """nginx answering `return 200` to POST on 127.0.0.1, one worker.
    tls={"cert", "key"}: `listen ... ssl` with NGINX_TLS; access_log: a
    log_format line logged to access.log in its directory (read_access_log);
    status=True: stub_status on a second, plain port (self.status_port)."""

    def __init__(self, cpu=SERVER_CPU, tls=None, access_log=None, status=False):
        self.dir = tempfile.mkdtemp(prefix="bench-nginx-")
        self.port = free_port()
        self.status_port = free_port() if status else None
        log = "access_log off;"
        if access_log:
            log = "log_format bench '%s';\n  access_log %s/access.log bench;" % (access_log,
                                                                               self.dir)
        status_server = ""
        if status:
            status_server = ("server {\n    listen 127.0.0.1:%d;\n"
                             "    location / { stub_status; }\n  }" % self.status_port)
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""
worker_processes 1;
daemon off;
error_log %(d)s/error.log;
pid %(d)s/nginx.pid;
events { worker_connections 4096; }
http {
  %(log)s
  client_body_temp_path %(d)s/body;
  proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fcgi;
  uwsgi_temp_path %(d)s/uwsgi;
  scgi_temp_path %(d)s/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:%(p)d%(ssl)s;%(tls)s
    location / { return 200 '{"accepted":1}'; }
  }
  %(status)s
}
""" % {"d": self.dir, "p": self.port, "log": log, "status": status_server,
       "ssl": " ssl" if tls else "", "tls": NGINX_TLS % tls if tls else ""})
        self.proc = Process(["nginx", "-c", conf, "-p", self.dir], cpu=cpu,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def worker_pid(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return int(out.split()[0])

    def accepts(self):
        """Connections accepted so far (stub_status; status=True)."""
        import urllib.request
        text = urllib.request.urlopen("http://127.0.0.1:%d/" % self.status_port,
                                      timeout=10).read().decode()
        # "Active connections: 1\nserver accepts handled requests\n 5 5 9\n..."
        return int(text.splitlines()[2].split()[0])

    def read_access_log(self):
        with open(os.path.join(self.dir, "access.log")) as f:
            return f.read().splitlines()

    def stop(self):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Ingestd:
    """ingestd from the Release build on a given config body. tls={"cert",
    "key"}: the listener `public` is HTTPS with them (ingestd's TLS defaults
    otherwise: OpenSSL's, see NGINX_TLS)."""

    def __init__(self, config_body, workers=1, cpu=SERVER_CPU, service_extra="", tls=None):
        self.dir = tempfile.mkdtemp(prefix="bench-ingestd-")
        self.port = free_port()
        self.admin = free_port()
        conf = os.path.join(self.dir, "ingestd.toml")
        with open(conf, "w") as f:
            f.write("""
[service]
workers = %d
admin = "127.0.0.1:%d"
storage_dir = "%s/state"
log_level = "warn"
%s

[listeners.public]
listen = "127.0.0.1:%d"
%s
""" % (workers, self.admin, self.dir, service_extra, self.port,
       'tls_cert = "%(cert)s"\ntls_key = "%(key)s"' % tls if tls else "") + config_body)
        self.log = open(os.path.join(self.dir, "ingestd.log"), "w")
        self.proc = Process([os.path.join(BUILD, "ingestd"), "-c", conf, "--plugins-dir",
                             os.path.join(BUILD, "plugins")], cpu=cpu,
                            stdout=subprocess.DEVNULL, stderr=self.log)
        wait_port(self.port)

    def metrics(self):
        import urllib.request
        return urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.admin, timeout=10).read().decode()

    def stop(self):
        self.proc.stop()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


def load_bench(name):
    """Import bench/NAME/run as a module (bench_NAME), so that another script (the
    suite) runs that benchmark's own code path instead of a copy of it."""
    import importlib.machinery
    import importlib.util
    mod_name = "bench_" + name
    if mod_name in sys.modules:
        return sys.modules[mod_name]
    path = os.path.join(ROOT, "bench", name, "run")
    loader = importlib.machinery.SourceFileLoader(mod_name, path)
    spec = importlib.util.spec_from_loader(mod_name, loader)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[mod_name] = mod
    loader.exec_module(mod)
    return mod


def failed(r):
    """Failed requests in a wrk summary: non-2xx answers and socket errors."""
    return (r["non2xx"] + r["connect_errors"] + r["read_errors"] + r["write_errors"]
            + r["timeouts"])


def table(rows, columns):
    """Plain text table: rows are dicts, columns (key, title, format)."""
    widths = [max(len(t), *(len(fmt.format(r[k])) if r.get(k) is not None else 1 for r in rows))
              for k, t, fmt in columns]
    line = "  ".join(t.rjust(w) for (_, t, _), w in zip(columns, widths))
    out = [line, "-" * len(line)]
    for r in rows:
        out.append("  ".join((fmt.format(r[k]) if r.get(k) is not None else "-").rjust(w)
                             for (k, _, fmt), w in zip(columns, widths)))
    return "\n".join(out)
