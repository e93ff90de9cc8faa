"""A Redis Cluster of local redis-server processes, for the redis output's
cluster tests.

Six nodes (three primaries, three replicas; or as asked) on free loopback
ports, each in its own temporary directory, created with `redis-cli
--cluster create`; optionally TLS only (certificates from pki.py). A read
client that routes by slot and follows MOVED / ASK, SCAN over the primaries,
reshard (redis-cli, optionally in a thread) and SIGKILL failover with a wait
for the promotion. Every wait polls with a deadline; stop() ends every
process and removes every directory (register it with addCleanup /
addClassCleanup before start(), or rely on start() cleaning up after itself
when it fails).
"""

import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

import pki
from harness import wait_for
from needs import require_tool
from test_redis import REDIS_SERVER, Resp, RespError, free_port, redis_log
from test_redis_tls import TlsResp

SLOTS = 16384


def _crc16_table():
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x1021) if crc & 0x8000 else (crc << 1)
        table.append(crc & 0xFFFF)
    return table


_CRC16 = _crc16_table()


def crc16(data):
    """CRC16-XMODEM (polynomial 0x1021, initial 0), the one Redis Cluster uses."""
    crc = 0
    for b in data:
        crc = ((crc << 8) & 0xFFFF) ^ _CRC16[((crc >> 8) ^ b) & 0xFF]
    return crc


def key_slot(key):
    """The slot of a key: the text between the first '{' and the next '}' if
    that is not empty (the hash tag), else the whole key."""
    k = key.encode() if isinstance(key, str) else key
    start = k.find(b"{")
    if start >= 0:
        end = k.find(b"}", start + 1)
        if end > start + 1:
            k = k[start + 1:end]
    return crc16(k) % SLOTS


class ClusterPki:
    """A CA and a server certificate for localhost / 127.0.0.1 (pki.py). The
    nodes also present it to each other on the cluster bus, so it is good for
    clientAuth too. path() as test_redis_tls.Pki, for TlsResp."""

    EXT = ("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\n"
           "extendedKeyUsage=serverAuth,clientAuth\n")

    def __init__(self):
        require_tool("openssl")
        self.dir = tempfile.mkdtemp(prefix="ingestd-rcluster-pki-")
        try:
            pki.make_ca(self.dir, "ca")
            pki.make_cert(self.dir, "server", "ca", self.EXT, cn="localhost")
        except Exception:
            self.remove()
            raise

    def path(self, name):
        return os.path.join(self.dir, name)

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


class Node:
    """One cluster node: a redis-server in its own directory. `port` is the
    client port (the TLS port when the cluster speaks TLS)."""

    def __init__(self, cluster, port, bus_port):
        self.cluster = cluster
        self.port = port
        self.bus_port = bus_port
        self.dir = tempfile.mkdtemp(prefix="ingestd-rcluster-")
        self.proc = None
        self.id = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def __repr__(self):
        return "Node(%s)" % self.address

    def start(self):
        args = [REDIS_SERVER, "--bind", "127.0.0.1", "--dir", self.dir,
                "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                "--cluster-node-timeout", str(self.cluster.node_timeout_ms),
                "--cluster-port", str(self.bus_port), "--save", "", "--appendonly", "no",
                # A replica's first sync starts at once (default: after 5 s).
                "--repl-diskless-sync-delay", "0", "--daemonize", "no",
                "--logfile", os.path.join(self.dir, "redis.log")]
        pk = self.cluster.pki
        if pk:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cluster", "yes",
                     "--tls-replication", "yes", "--tls-cert-file", pk.path("server.pem"),
                     "--tls-key-file", pk.path("server.key"),
                     "--tls-ca-cert-file", pk.path("ca.pem"), "--tls-auth-clients", "no"]
        else:
            args += ["--port", str(self.port)]
        if self.cluster.cpu is not None:
            args = ["taskset", "-c", str(self.cluster.cpu)] + args
        self.proc = subprocess.Popen(args + self.cluster.extra, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def wait_ready(self):
        def pong():
            if self.proc.poll() is not None:
                raise AssertionError("redis-server %s exited: %s" % (self.address, self.log()))
            try:
                return self.call("PING") == "PONG"
            except (OSError, RespError):
                return False
        wait_for(pong, 20, "%s to answer PING" % self.address, interval=0.02)
        self.id = self.call("CLUSTER", "MYID")

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def client(self, timeout=10):
        if self.cluster.pki:
            return TlsResp(self.port, self.cluster.pki, timeout=timeout)
        return Resp(port=self.port, timeout=timeout)

    def call(self, *args):
        """One command on a fresh connection; an error reply raises RespError."""
        c = self.client()
        try:
            return c(*args)
        finally:
            c.close()

    def info(self, section):
        """INFO section as a dict; "cluster" is CLUSTER INFO (cluster_state...)."""
        text = self.call("CLUSTER", "INFO") if section == "cluster" else self.call("INFO", section)
        return dict(line.split(":", 1) for line in text.splitlines() if ":" in line)

    def kill(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def stop(self):
        if self.alive():
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        return redis_log(self.dir)


def parse_nodes(text):
    """CLUSTER NODES -> {id: {"port", "flags", "master", "slots", "open"}}:
    slots a list of (first, last), open the migrating / importing entries."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) < 8:
            continue
        slots, open_ = [], []
        for s in f[8:]:
            if s.startswith("["):
                open_.append(s)
                continue
            lo, _, hi = s.partition("-")
            slots.append((int(lo), int(hi or lo)))
        out[f[0]] = {"port": int(f[1].split("@")[0].rsplit(":", 1)[1]),
                     "flags": set(f[2].split(",")), "master": f[3], "slots": slots,
                     "open": open_}
    return out


class Reshard(threading.Thread):
    """redis-cli --cluster reshard in a thread; join() raises what it failed with."""

    def __init__(self, cluster, args):
        super().__init__(daemon=True)
        self.cluster = cluster
        self.args = args
        self.error = None
        self.output = ""

    def run(self):
        try:
            self.output = self.cluster.cli(*self.args, timeout=180)
        except Exception as e:  # re-raised by join()
            self.error = e

    def join(self, timeout=180):
        super().join(timeout)
        if self.is_alive():
            raise AssertionError("reshard still running after %ss" % timeout)
        if self.error is not None:
            raise self.error


class RedisCluster:
    """The cluster. primaries() / replicas() are Node objects (with .port and
    .id) in the view of a live node, sorted by port."""

    def __init__(self, primaries=3, replicas=1, tls=False, node_timeout_ms=2000, extra=(),
                 cpu=None):
        require_tool("redis-server")
        require_tool("redis-cli")
        self.n_primaries = primaries
        self.n_replicas = replicas
        self.node_timeout_ms = node_timeout_ms
        self.extra = list(extra)
        self.cpu = cpu  # a taskset CPU list for every node (benchmarks)
        self.pki = None
        self.tls = tls
        self.nodes = []
        self.promoting = None  # the replica of the last kill_primary

    # ---- life cycle
    def start(self, timeout=60):
        try:
            if self.tls:
                self.pki = ClusterPki()
            count = self.n_primaries * (1 + self.n_replicas)
            ports = []
            while len(ports) < 2 * count:
                p = free_port()
                if p not in ports:
                    ports.append(p)
            self.nodes = [Node(self, ports[2 * i], ports[2 * i + 1]) for i in range(count)]
            for n in self.nodes:
                n.start()
            for n in self.nodes:
                n.wait_ready()
            out = self.cli("--cluster", "create", *[n.address for n in self.nodes],
                           "--cluster-replicas", str(self.n_replicas), "--cluster-yes",
                           timeout=timeout)
            if "All %d slots covered" % SLOTS not in out:
                raise AssertionError("redis-cli --cluster create:\n" + out)
            self.wait_ok(timeout, replicas=count - self.n_primaries)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        for n in self.nodes:
            n.stop()
        if self.pki:
            self.pki.remove()

    def cli(self, *args, timeout=60):
        """redis-cli with the cluster's TLS options; its output, or AssertionError."""
        cmd = [shutil.which("redis-cli") or "redis-cli"]
        if self.pki:
            cmd += ["--tls", "--cacert", self.pki.path("ca.pem")]
        p = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=timeout,
                           stdin=subprocess.DEVNULL)
        out = p.stdout + p.stderr
        if p.returncode != 0 or "[ERR]" in out:
            raise AssertionError("redis-cli %s exited %d:\n%s" % (" ".join(args), p.returncode,
                                                                  out[-3000:]))
        return out

    # ---- topology
    def alive(self):
        return [n for n in self.nodes if n.alive()]

    def node(self, port=None, id=None):
        for n in self.nodes:
            if (port is not None and n.port == port) or (id is not None and n.id == id):
                return n
        raise KeyError(port or id)

    def view(self, node=None):
        """CLUSTER NODES of `node` (default: the first live node), parsed."""
        return parse_nodes((node or self.alive()[0]).call("CLUSTER", "NODES"))

    def primaries(self):
        v = self.view()
        return sorted((self.node(id=i) for i, e in v.items()
                       if "master" in e["flags"] and "fail" not in e["flags"] and e["slots"]),
                      key=lambda n: n.port)

    def replicas(self):
        v = self.view()
        return sorted((self.node(id=i) for i, e in v.items()
                       if "slave" in e["flags"] and "fail" not in e["flags"]),
                      key=lambda n: n.port)

    def replica_of(self, primary):
        for i, e in self.view().items():
            if e["master"] == primary.id and "fail" not in e["flags"]:
                return self.node(id=i)
        return None

    def slots_of(self, node):
        """The slots `node` owns, in order."""
        e = self.view()[node.id]
        return [s for lo, hi in e["slots"] for s in range(lo, hi + 1)]

    def _settled(self, replicas=None):
        """None when every live node says cluster_state:ok, all agree on the
        roles of the live nodes and on which live primary owns every slot, no
        slot is migrating and every live replica's link to its primary is up
        (and, if given, there are `replicas` replicas); else what is not yet so."""
        views = {}
        for n in self.alive():
            try:
                if n.info("cluster").get("cluster_state") != "ok":
                    return "%s: cluster_state not ok" % n.address
                v = self.view(n)
                repl = n.info("replication")
            except (OSError, RespError) as e:
                return "%s: %s" % (n.address, e)
            if repl.get("role") == "slave" and repl.get("master_link_status") != "up":
                return "%s: replica link down" % n.address
            covered = 0
            agreed = []
            for i, e in v.items():
                if e["open"]:
                    return "%s: open slots %s" % (n.address, e["open"])
                alive = self.node(id=i).alive()
                if e["slots"] and ("fail" in e["flags"] or not alive):
                    return "%s: slots on a dead node %s" % (n.address, e["port"])
                covered += sum(hi - lo + 1 for lo, hi in e["slots"])
                if alive:
                    role = "master" if "master" in e["flags"] else "slave"
                    agreed.append((i, role, e["master"], tuple(e["slots"])))
            if covered != SLOTS:
                return "%s: slots not covered" % n.address
            views[n.port] = tuple(sorted(agreed))
        if len(set(views.values())) != 1:
            return "nodes disagree on roles or slots"
        if replicas is not None:
            have = sum(1 for e in next(iter(views.values())) if e[1] == "slave")
            if have != replicas:
                return "%d replicas, not %d" % (have, replicas)
        return None

    def wait_ok(self, timeout=60, replicas=None):
        last = []

        def settled():
            last[:] = [self._settled(replicas)]
            return last[0] is None
        try:
            wait_for(settled, timeout, "the cluster to settle", interval=0.05)
        except AssertionError:
            raise AssertionError("cluster not settled after %ss: %s" % (timeout, last[0])) from None

    # ---- data
    def flushall(self):
        for n in self.primaries():
            n.call("FLUSHALL")

    def keys(self, match="*"):
        """Every key on the primaries (SCAN), as a set."""
        out = set()
        for n in self.primaries():
            c = n.client()
            try:
                cursor = "0"
                while True:
                    cursor, batch = c("SCAN", cursor, "MATCH", match, "COUNT", 1000)
                    out.update(batch)
                    if cursor == "0":
                        break
            finally:
                c.close()
        return out

    def client(self):
        return ClusterClient(self)

    # ---- changes
    def reshard(self, src, dst, nslots, pipeline=1, background=False):
        """Moves the first `nslots` slots of src to dst with redis-cli.
        background=True returns the running Reshard (join() it), else waits
        for it and for the cluster to settle."""
        self.wait_ok()
        r = Reshard(self, ["--cluster", "reshard", src.address, "--cluster-from", src.id,
                           "--cluster-to", dst.id, "--cluster-slots", str(nslots),
                           "--cluster-yes", "--cluster-pipeline", str(pipeline)])
        r.start()
        if background:
            return r
        r.join()
        self.wait_ok()
        return r

    def kill_primary(self, i):
        """SIGKILLs primaries()[i]; returns (the killed node, its replica)."""
        p = self.primaries()[i]
        r = self.replica_of(p)
        p.kill()
        self.promoting = r
        return p, r

    def wait_promoted(self, timeout=60):
        """The replica of the last kill_primary is a primary and the cluster
        (what is reachable of it) is settled; returns it."""
        r = self.promoting

        def promoted():
            try:
                return r.info("replication").get("role") == "master"
            except (OSError, RespError):
                return False
        wait_for(promoted, timeout, "%s to be promoted" % r.address, interval=0.05)
        self.wait_ok(timeout)
        return r


class ClusterClient:
    """Reads back what ingestd wrote: each command goes to the owner of the
    slot of its first argument (the key), as CLUSTER SLOTS says; MOVED
    updates the map and resends, ASK sends ASKING + the command to the node
    named. Counts both (moved, asked)."""

    def __init__(self, cluster):
        self.cluster = cluster
        self.conns = {}
        self.owner = [None] * SLOTS
        self.moved = 0
        self.asked = 0
        self.refresh()

    def refresh(self):
        for n in self.cluster.alive():
            try:
                shards = n.call("CLUSTER", "SLOTS")
            except (OSError, RespError):
                continue
            for entry in shards:
                for s in range(entry[0], entry[1] + 1):
                    self.owner[s] = entry[2][1]
            return
        raise AssertionError("no live node answers CLUSTER SLOTS")

    def close(self):
        for c in self.conns.values():
            c.close()
        self.conns = {}

    def _conn(self, port):
        c = self.conns.get(port)
        if c is None:
            c = self.conns[port] = self.cluster.node(port=port).client()
        return c

    def __call__(self, *args):
        r = self.pipeline([args])[0]
        if isinstance(r, RespError):
            raise r
        return r

    def pipeline(self, commands, attempts=20):
        """The replies of `commands` in order (errors as RespError values),
        pipelined per node."""
        results = [None] * len(commands)
        pending = list(range(len(commands)))
        ask = {}
        for _ in range(attempts):
            if not pending:
                return results
            by_port = {}
            for i in pending:
                port = ask.get(i) or self.owner[key_slot(str(commands[i][1]))]
                by_port.setdefault(port, []).append(i)
            pending = []
            for port, idx in by_port.items():
                sent, where = [], []
                for i in idx:
                    if i in ask:
                        sent.append(("ASKING",))
                    where.append(len(sent))
                    sent.append(commands[i])
                try:
                    replies = self._conn(port).pipeline(sent)
                except OSError:
                    self.conns.pop(port).close()
                    pending += idx
                    self.refresh()
                    continue
                for i, w in zip(idx, where):
                    r = replies[w]
                    text = str(r) if isinstance(r, RespError) else ""
                    if text.startswith(("MOVED ", "ASK ")):
                        kind, slot, addr = text.split()
                        target = int(addr.rsplit(":", 1)[1])
                        if kind == "MOVED":
                            self.owner[int(slot)] = target
                            self.moved += 1
                            ask.pop(i, None)
                        else:
                            ask[i] = target
                            self.asked += 1
                        pending.append(i)
                    elif text.startswith(("TRYAGAIN", "CLUSTERDOWN")):
                        pending.append(i)
                    else:
                        ask.pop(i, None)
                        results[i] = r
            if pending:
                time.sleep(0.02)
        raise AssertionError("%d commands not answered after %d attempts (first: %r)"
                             % (len(pending), attempts, commands[pending[0]]))

    def hgetall(self, keys):
        """{key: {field: value}} of HGETALL, pipelined; {} for a missing key."""
        replies = self.pipeline([("HGETALL", k) for k in keys])
        out = {}
        for k, r in zip(keys, replies):
            if isinstance(r, RespError):
                raise r
            out[k] = dict(zip(r[0::2], r[1::2]))
        return out


def _self_check():
    """python3 redis_cluster.py [--tls]: create, write, reshard, fail over."""
    import sys
    t0 = time.monotonic()
    cluster = RedisCluster(tls="--tls" in sys.argv)
    try:
        cluster.start()
        print("created in %.1fs: primaries %s replicas %s" % (
            time.monotonic() - t0, cluster.primaries(), cluster.replicas()))
        c = cluster.client()
        keys = ["k:{%d}" % i for i in range(3000)]
        assert all(r == 1 for r in c.pipeline([("HSET", k, "v", k) for k in keys]))
        assert cluster.keys() == set(keys)
        a, b, _ = cluster.primaries()
        t0 = time.monotonic()
        cluster.reshard(a, b, 3000)
        print("resharded in %.1fs; %s owns %d slots" % (time.monotonic() - t0, b,
                                                        len(cluster.slots_of(b))))
        assert [h["v"] for h in c.hgetall(keys).values()] == keys
        print("read back after reshard, %d MOVED" % c.moved)
        t0 = time.monotonic()
        dead, replica = cluster.kill_primary(0)
        cluster.wait_promoted()
        print("%s killed, %s promoted in %.1fs; primaries %s" % (
            dead, replica, time.monotonic() - t0, cluster.primaries()))
        c.refresh()
        assert len(c.hgetall(keys)) == len(keys)
        c.close()
    finally:
        cluster.stop()


if __name__ == "__main__":
    _self_check()
