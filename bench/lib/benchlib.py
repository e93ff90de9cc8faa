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


def wrk(port, path, connections, seconds, body=None, env_extra=None, threads=1):
    env = dict(os.environ)
    if body is not None:
        env["BODY"] = body
    env.update(env_extra or {})
    cmd = ["taskset", "-c", LOAD_CPU, "wrk", "-t%d" % threads, "-c%d" % connections,
           "-d%ds" % seconds, "--timeout", "10s", "-s", LUA, "http://127.0.0.1:%d%s" % (port, path)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout
    m = re.search(r"WRK_JSON (\{.*\})", out)
    if not m:
        raise RuntimeError("wrk printed no summary:\n" + out)
    r = json.loads(m.group(1))
    r["rps"] = r["requests"] / (r["duration_us"] / 1e6)
    return r


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
    """nginx answering `return 200` to POST on 127.0.0.1, one worker."""

    def __init__(self, cpu=SERVER_CPU):
        self.dir = tempfile.mkdtemp(prefix="bench-nginx-")
        self.port = free_port()
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""
worker_processes 1;
daemon off;
error_log %(d)s/error.log;
pid %(d)s/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path %(d)s/body;
  proxy_temp_path %(d)s/proxy;
  fastcgi_temp_path %(d)s/fcgi;
  uwsgi_temp_path %(d)s/uwsgi;
  scgi_temp_path %(d)s/scgi;
  keepalive_requests 1000000;
  server {
    listen 127.0.0.1:%(p)d;
    location / { return 200 '{"accepted":1}'; }
  }
}
""" % {"d": self.dir, "p": self.port})
        self.proc = Process(["nginx", "-c", conf, "-p", self.dir], cpu=cpu,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port)

    def worker_pid(self):
        out = subprocess.run(["pgrep", "-P", str(self.proc.pid)], capture_output=True, text=True).stdout
        return int(out.split()[0])

    def stop(self):
        self.proc.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


class Ingestd:
    """ingestd from the Release build on a given config body."""

    def __init__(self, config_body, workers=1, cpu=SERVER_CPU, service_extra=""):
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
""" % (workers, self.admin, self.dir, service_extra, self.port) + config_body)
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
