"""The redis output in cluster mode (`cluster = true`) against a real Redis
Cluster: six redis-server processes on loopback ports (redis_cluster.py),
three primaries with a replica each.

One cluster is shared by the tests that leave it working (FLUSHALL between
them; a test may move slots, as long as three primaries keep some, and
closes every slot it opened, also when it fails); the failover, TLS and
if_newer-reshard tests start their own (a failed reshard leaves slots open). ingestd's view is read from its
/metrics (per node: ingestd_redis_node_commands_total{node="127.0.0.1:PORT"},
redirections by kind), what it wrote with a slot-routing client. Waits poll
with deadlines; every process is stopped by the test.
"""

import json
import random
import re
import shutil
import threading
import unittest

from harness import Daemon, run_ingestd, wait_for, PLUGINS
from redis_cluster import RedisCluster, key_slot
from test_redis import RedisServer, RespError, config, free_port
from test_redis_tls import tls_options

# The key's hash tag is the device id: `{{` and `}}` are literal braces.
RIDER = [["HSET", "rider:{{{device_id}}}", "lat", "{lat}", "lon", "{lon}", "seq", "{seq}"]]


def rider_key(device):
    return "rider:{%s}" % device


def riders(devices, seq=0):
    """One record per device id; lat/lon from the id's position in the list."""
    return [{"device_id": dev, "lat": round(37 + i * 1e-4, 6), "lon": round(127 + i * 1e-4, 6),
             "seq": seq} for i, dev in enumerate(devices)]


def expected_riders(records):
    """The hashes `records` leave under RIDER: numbers exactly as sent."""
    return {rider_key(r["device_id"]): {"lat": json.dumps(r["lat"]), "lon": json.dumps(r["lon"]),
                                        "seq": str(r["seq"])} for r in records}


def cluster_options(seeds=(), refresh=None):
    """cluster = true, further seeds besides `address`, the refresh interval."""
    lines = ["cluster = true"]
    if seeds:
        lines.append("addresses = %s" % json.dumps([n.address for n in seeds]))
    if refresh:
        lines.append('cluster_refresh_interval = "%s"' % refresh)
    return "\n".join(lines)


class ClusterTestCase(unittest.TestCase):
    cluster = None

    def start_daemon(self, extra, commands=RIDER, seed=None, address=None, **kw):
        address = address or (seed or self.cluster.primaries()[0]).address
        d = Daemon(config(address, commands, extra), **kw)
        self.addCleanup(shutil.rmtree, d.dir, True)
        d.start()
        self.addCleanup(self.stop_daemon, d)
        self.d = d
        return d

    def stop_daemon(self, d):
        if d.proc is not None and d.proc.poll() is None:
            self.assertEqual(d.stop(), 0, d.log_text())

    def post(self, records, chunk=250):
        for i in range(0, len(records), chunk):
            part = records[i:i + chunk]
            status, body, _ = self.d.post("/v1/trace", part)
            self.assertEqual(status, 200, body)
            self.assertEqual(json.loads(body)["accepted"], len(part))

    def metric(self, name, **labels):
        return self.d.metric(name, output="pos", **labels) or 0

    def start_sender(self, sender, stop, flowing):
        """Runs sender on a thread (stop, an Event, is set when the test ends)
        and returns it once `flowing` records went out."""
        t = threading.Thread(target=sender, daemon=True)
        t.start()
        self.addCleanup(stop.set)
        wait_for(lambda: self.metric("ingestd_output_records_total") >= flowing, 30,
                 "records flowing before the reshard")
        return t

    def wait_hashes(self, expected, timeout=60):
        """Every key of `expected` (key -> {field: value}) holds at least
        those fields with those values, read through the cluster."""
        c = self.cluster.client()
        keys = sorted(expected)
        missing = []

        def all_there():
            got = c.hgetall(keys)
            missing[:] = [k for k in keys
                          if any(got[k].get(f) != v for f, v in expected[k].items())]
            return not missing
        try:
            wait_for(all_there, timeout, "%d hashes in the cluster" % len(keys), interval=0.1)
        except AssertionError as e:
            raise AssertionError("%s: %d wrong or missing (%s...); ingestd log:\n%s" % (
                e, len(missing), missing[:3], self.d.log_text()[-4000:])) from None
        finally:
            c.close()

    def assert_every_primary_got_commands(self, primaries):
        for p in primaries:
            n = self.metric("ingestd_redis_node_commands_total", node=p.address)
            self.assertGreater(n, 0, "no commands counted for %s:\n%s"
                               % (p.address, self.d.admin_get("/metrics")[1]))

    def hot_devices(self, slots, per_slot=10, fill=10):
        """per_slot device ids in each of `slots`, each with `fill` more keys
        in its slot. A node answers ASK for a key its migrating slot no
        longer holds: with one key per MIGRATE (pipeline 1), such a slot
        stays open for ~per_slot * fill MIGRATEs while its first keys are
        already on the new node."""
        hot = set(slots)
        have = {}
        devices = []
        for dev in ("m%d" % i for i in range(10 ** 6)):
            if len(devices) == len(hot) * per_slot:
                break
            s = key_slot(dev)
            if s in hot and len(have.setdefault(s, [])) < per_slot:
                have[s].append(dev)
                devices.append(dev)
        client = self.cluster.client()
        try:
            client.pipeline([("SET", "fill:{%s}:%d" % (dev, j), "x")
                             for dev in devices for j in range(fill)])
        finally:
            client.close()
        return devices

    def move_slot(self, slot, src, dst):
        """A slot without keys from src to dst, as redis-cli does it."""
        dst.call("CLUSTER", "SETSLOT", slot, "IMPORTING", src.id)
        src.call("CLUSTER", "SETSLOT", slot, "MIGRATING", dst.id)
        self.finish_migration(slot, dst)

    def finish_migration(self, slot, owner, src=None):
        """CLUSTER SETSLOT slot NODE owner on every primary, owner first (as
        redis-cli does), after moving what src still holds in the slot (with
        REPLACE: the cleanup of a failed test); idempotent."""
        for k in (src.call("CLUSTER", "GETKEYSINSLOT", slot, 1000) if src else []):
            src.call("MIGRATE", "127.0.0.1", owner.port, k, 0, 5000, "REPLACE")
        for n in [owner] + [p for p in self.cluster.primaries() if p is not owner]:
            try:
                n.call("CLUSTER", "SETSLOT", slot, "NODE", owner.id)
            except RespError:
                pass
        self.cluster.wait_ok()


class SharedClusterTest(ClusterTestCase):
    @classmethod
    def setUpClass(cls):
        cls.cluster = RedisCluster()
        cls.addClassCleanup(cls.cluster.stop)
        cls.cluster.start()

    def setUp(self):
        self.cluster.wait_ok()
        self.cluster.flushall()

    def test_records_of_2000_devices_land_on_their_slots_on_all_three_primaries(self):
        primaries = self.cluster.primaries()
        self.assertEqual(len(primaries), 3)
        # One seed: the others are found through CLUSTER SHARDS.
        self.start_daemon(cluster_options(), seed=primaries[0])
        records = riders(["d%d" % i for i in range(2000)], seq=7)
        self.post(records)
        expected = expected_riders(records)
        self.wait_hashes(expected)
        self.assertEqual(self.cluster.keys(), set(expected))
        self.assert_every_primary_got_commands(primaries)
        self.assertEqual(self.metric("ingestd_redis_cluster_primaries"), 3)
        # The slot map was right from the start: a wrong slot (hash tag or
        # CRC16) would have shown as MOVED, and reached Redis all the same.
        self.assertEqual(self.metric("ingestd_redis_redirections_total"), 0)
        self.assertEqual(self.metric("ingestd_redis_node_errors_total"), 0)
        self.assertEqual(self.metric("ingestd_output_records_total"), 2000)
        self.assertEqual(self.metric("ingestd_output_dead_letter_records_total"), 0)

    def test_ask_while_a_slot_migrates_then_moved_once_it_has(self):
        a, b = self.cluster.primaries()[:2]
        owned = set(self.cluster.slots_of(a))
        dev = next("ask%d" % i for i in range(100000) if key_slot("ask%d" % i) in owned)
        slot = key_slot(dev)
        # No periodic refresh during the test: only a redirection tells
        # ingestd that the slot moved.
        d = self.start_daemon(cluster_options([b], refresh="1h"), seed=a)
        self.post(riders(["warm"], seq=0))
        wait_for(lambda: self.metric("ingestd_output_records_total") >= 1, 30, "a first record")
        # A slot half-way from a to b (as redis-cli does it, without moving
        # the key: there is none yet): a answers ASK for a key it lacks.
        b.call("CLUSTER", "SETSLOT", slot, "IMPORTING", a.id)
        a.call("CLUSTER", "SETSLOT", slot, "MIGRATING", b.id)
        self.addCleanup(self.finish_migration, slot, b)
        self.post(riders([dev], seq=1))
        c = b.client()
        self.addCleanup(c.close)

        def on_b():
            r = c.pipeline([("ASKING",), ("HGET", rider_key(dev), "seq")])[1]
            return r == "1"
        wait_for(on_b, 30, "the record on the importing node")
        self.assertGreaterEqual(self.metric("ingestd_redis_redirections_total", node=a.address,
                                            kind="ask"), 1, d.admin_get("/metrics")[1])
        # ASK does not change the map: the next command for the slot goes
        # to a again, and once the slot is b's, a answers MOVED.
        self.finish_migration(slot, b)
        self.post(riders([dev], seq=2))
        self.wait_hashes({rider_key(dev): {"seq": "2"}})
        self.assertGreaterEqual(self.metric("ingestd_redis_redirections_total", node=a.address,
                                            kind="moved"), 1, d.admin_get("/metrics")[1])
        self.assertEqual(self.metric("ingestd_output_dead_letter_records_total"), 0)

    def test_if_newer_waits_while_a_migration_moved_its_guard_key_first(self):
        # The script must not run on the importing node: it would create a
        # second copy of the hash there (redis-cli then stops with "Target
        # key exists"; with --cluster-replace the older copy overwrites the
        # newer).
        self.split_by_migration(guard_first=True)

    def test_if_newer_waits_while_a_migration_moved_its_hash_first(self):
        # On the migrating node the script would fail ("Script attempted to
        # access a non local key"): the record must not go to dead letters.
        self.split_by_migration(guard_first=False)

    def split_by_migration(self, guard_first):
        """redis-cli migrates a slot key by key: one of the two keys of the
        if_newer script has moved, the other not yet. Keys the script
        declares make the migrating node answer TRYAGAIN, retried until the
        slot is whole again; then the record lands on the new owner."""
        a, b = self.cluster.primaries()[:2]
        owned = set(self.cluster.slots_of(a))
        dev = next("split%d" % i for i in range(100000) if key_slot("split%d" % i) in owned)
        slot, key, guard = key_slot(dev), rider_key(dev), rider_key(dev) + ":ts"
        first, second = (guard, key) if guard_first else (key, guard)
        self.start_daemon(cluster_options([b], refresh="1h") + '\nif_newer = "ts"\n'
                          'if_newer_key = "rider:{{{device_id}}}:ts"', seed=a,
                          commands=[["HSET", "rider:{{{device_id}}}", "ts", "{ts}"]])
        self.post([{"device_id": dev, "ts": 1}])
        self.wait_hashes({key: {"ts": "1"}})
        b.call("CLUSTER", "SETSLOT", slot, "IMPORTING", a.id)
        a.call("CLUSTER", "SETSLOT", slot, "MIGRATING", b.id)
        self.addCleanup(self.finish_migration, slot, b, a)
        self.assertEqual(a.call("MIGRATE", "127.0.0.1", b.port, first, 0, 5000), "OK")
        self.post([{"device_id": dev, "ts": 2}])
        c = b.client()
        self.addCleanup(c.close)

        def outcome():
            if c.pipeline([("ASKING",), ("EXISTS", second)])[1] == 1:
                return "%s written on the importing node %s" % (second, b.address)
            if self.metric("ingestd_output_dead_letter_records_total") > 0:
                return "dead-lettered"
            if self.metric("ingestd_output_retried_records_total") > 0:
                return "retried"
            return None
        self.assertEqual(wait_for(outcome, 20, "a retry, a dead letter or a split key"),
                         "retried", "while %s still holds it; ingestd log:\n%s" % (
                             a.address, self.d.log_text()[-3000:]))
        self.finish_migration(slot, b, a)
        self.wait_hashes({key: {"ts": "2"}})
        self.assertEqual(b.call("GET", guard), "2")

    def test_periodic_refresh_follows_a_moved_slot_without_a_redirection(self):
        a, b = self.cluster.primaries()[:2]
        owned = set(self.cluster.slots_of(a))
        dev = next("per%d" % i for i in range(100000) if key_slot("per%d" % i) in owned)
        self.start_daemon(cluster_options(refresh="300ms"), seed=a)

        def refreshes():
            return self.metric("ingestd_redis_cluster_refreshes_total")
        wait_for(lambda: refreshes() >= 2, 10, "two periodic refreshes")
        self.move_slot(key_slot(dev), a, b)
        # Two more: the second began after the move.
        n = refreshes()
        wait_for(lambda: refreshes() >= n + 2, 10, "two more periodic refreshes")
        self.post(riders([dev], seq=5))
        self.wait_hashes({rider_key(dev): {"seq": "5"}})
        self.assertEqual(self.metric("ingestd_redis_redirections_total"), 0)
        self.assertGreater(self.metric("ingestd_redis_node_commands_total", node=b.address), 0)
        self.assertEqual(self.metric("ingestd_redis_node_commands_total", node=a.address), 0)

    def test_first_seed_down_the_next_one_is_used(self):
        primaries = self.cluster.primaries()
        self.start_daemon(cluster_options([primaries[1]]),
                          address="127.0.0.1:%d" % free_port())
        records = riders(["seed%d" % i for i in range(300)])
        self.post(records)
        self.wait_hashes(expected_riders(records))
        self.assert_every_primary_got_commands(primaries)

    def test_reshard_under_load_loses_no_acknowledged_record(self):
        # a owns the lowest slots: its first 3000 go to c, then c's first
        # 3000 (the same ones, below c's own) go on to b.
        by_first = sorted(self.cluster.primaries(), key=lambda n: self.cluster.slots_of(n)[0])
        a, b, c = by_first
        moving = self.cluster.slots_of(a)[:3000]
        devices = self.hot_devices(moving[::20]) + ["s%d" % i for i in range(500)]
        d = self.start_daemon(cluster_options([b, c]), seed=a, commands=[
            # Every record stays readable: a field per sequence number.
            ["HSET", "trail:{{{device_id}}}", "{seq}", "{lat}"]])
        # Record n is devices[n % len(devices)]'s, with lat(n).
        def lat(n):
            return n % 9000 / 100
        acked, failed, stop = [], [], threading.Event()

        def sender():
            seq = 0
            while not stop.is_set():
                batch = [{"device_id": devices[n % len(devices)], "seq": n, "lat": lat(n)}
                         for n in range(seq, seq + 100)]
                try:
                    status, _, _ = d.post("/v1/trace", batch)
                except OSError as e:
                    failed.append(repr(e))
                    continue
                # Anything else (503: queue full) was refused as a whole.
                if status == 200:
                    acked.extend(range(seq, seq + 100))
                else:
                    failed.append(status)
                seq += 100
                # ~5000 records/s: enough for hundreds of ASK, and few
                # enough to read every one back.
                stop.wait(0.02)
        t = self.start_sender(sender, stop, flowing=2000)
        self.cluster.reshard(a, c, 3000)
        self.cluster.reshard(c, b, 3000)
        n = self.metric("ingestd_output_records_total")
        wait_for(lambda: self.metric("ingestd_output_records_total") >= n + 2000, 30,
                 "records flowing after the reshard")
        stop.set()
        t.join(30)
        self.assertGreater(len(acked), 5000)
        wait_for(lambda: self.metric("ingestd_output_records_total") >= len(acked), 60,
                 "%d acknowledged records delivered" % len(acked))
        want = {}
        for n in acked:
            want.setdefault("trail:{%s}" % devices[n % len(devices)], {})[str(n)] = \
                json.dumps(lat(n))
        self.wait_hashes(want, timeout=30)
        moved = self.metric("ingestd_redis_redirections_total", kind="moved")
        ask = self.metric("ingestd_redis_redirections_total", kind="ask")
        print("\nreshard under load: %d records acknowledged, %d refused requests, "
              "%d MOVED, %d ASK" % (len(acked), len(failed), moved, ask))
        self.assertGreater(moved, 0)
        self.assertGreater(ask, 0, "no ASK during two reshards of 3000 slots under load")
        self.assertEqual(self.metric("ingestd_output_dead_letter_records_total"), 0)


class IfNewerReshardTest(ClusterTestCase):
    """Its own cluster (no replicas): a failed reshard leaves slots open."""

    options = ""

    def setUp(self):
        self.cluster = RedisCluster(replicas=0)
        self.addCleanup(self.cluster.stop)
        self.cluster.start()

    def test_if_newer_across_a_reshard_keeps_the_newest_per_device(self):
        # Both keys of a device share its slot (hash tag), so the script
        # runs on one node; while their slot migrates one may have moved and
        # not the other (TRYAGAIN), or both (ASK, then ASKING + EVALSHA on a
        # node that may not know the script yet).
        a, b, _ = sorted(self.cluster.primaries(), key=lambda n: self.cluster.slots_of(n)[0])
        devices = self.hot_devices(self.cluster.slots_of(a)[:600][::12], per_slot=8)
        d = self.start_daemon(
            cluster_options([b]) + '\nif_newer = "ts"\nif_newer_key = "rider:{{{device_id}}}:ts"'
            + self.options,
            seed=a, commands=[["HSET", "rider:{{{device_id}}}", "ts", "{ts}", "lat", "{lat}"]])
        rng = random.Random(7)
        newest, stop, errors = {}, threading.Event(), []

        def sender():
            ts = 1000
            while not stop.is_set():
                batch = []
                for dev in rng.sample(devices, 50):
                    # Now and then an old fix, which must never win.
                    t = ts - 500 if rng.random() < 0.2 else ts
                    batch.append({"device_id": dev, "ts": t, "lat": t / 1000})
                    ts += 1
                rng.shuffle(batch)
                status, body, _ = d.post("/v1/trace", batch)
                if status != 200:
                    errors.append((status, body))
                    continue
                for r in batch:
                    if r["ts"] > newest.get(r["device_id"], (0,))[0]:
                        newest[r["device_id"]] = (r["ts"], json.dumps(r["lat"]))
                stop.wait(0.01)
        t = self.start_sender(sender, stop, flowing=1000)
        # redis-cli stops with "Target key exists" if a script wrote a key
        # on the importing node while the migrating one still held it (the
        # script did not declare that key, so Redis could not answer TRYAGAIN).
        try:
            self.cluster.reshard(a, b, 600)
        except AssertionError as e:
            stop.set()
            both = set()
            for slot in sorted({key_slot(dev) for dev in devices}):
                on = [set(n.call("CLUSTER", "GETKEYSINSLOT", slot, 1000)) for n in (a, b)]
                both |= on[0] & on[1]
            raise AssertionError("%s\nkeys on both %s and %s: %s\ningestd log:\n%s" % (
                str(e)[-300:], a.address, b.address, sorted(both)[:10],
                d.log_text()[-3000:])) from None
        stop.set()
        t.join(30)
        self.assertEqual(errors, [])
        self.wait_hashes({rider_key(dev): {"ts": str(ts), "lat": lat}
                          for dev, (ts, lat) in newest.items()})
        c = self.cluster.client()
        self.addCleanup(c.close)
        guards = c.pipeline([("GET", rider_key(dev) + ":ts") for dev in newest])
        self.assertEqual(guards, [str(ts) for ts, _ in newest.values()])
        print("\nif_newer across a reshard: %d MOVED, %d ASK" % (
            self.metric("ingestd_redis_redirections_total", kind="moved"),
            self.metric("ingestd_redis_redirections_total", kind="ask")))
        self.assertEqual(self.metric("ingestd_output_dead_letter_records_total"), 0)


class IfNewerTtlReshardTest(IfNewerReshardTest):
    """The same with a ttl: the script then names every key it writes."""

    options = '\nttl = "1h"'


class FailoverTest(ClusterTestCase):
    def setUp(self):
        self.cluster = RedisCluster()
        self.addCleanup(self.cluster.stop)
        self.cluster.start()

    def test_primary_killed_replica_promoted_new_records_all_arrive(self):
        victim, other, third = self.cluster.primaries()
        # The seed is the node that dies; the periodic refresh is too far
        # away to help: what finds the new primary is the refresh that a
        # node not answering triggers.
        self.start_daemon(cluster_options([other], refresh="1h"), seed=victim)
        before = riders(["pre%d" % i for i in range(300)])
        self.post(before)
        self.wait_hashes(expected_riders(before))
        refreshes = self.metric("ingestd_redis_cluster_refreshes_total")
        dead, replica = self.cluster.kill_primary(0)
        self.assertIs(dead, victim)
        # Posted while the victim is down and before its replica takes
        # over: victim never acknowledged these, so none may be lost. They
        # wait (connection refused; CLUSTERDOWN once the others mark the
        # victim failed) and land after the promotion.
        outage = riders(["mid%d" % i for i in range(300)], seq=9)
        self.post(outage)

        def failed_state():
            try:
                return other.info("cluster").get("cluster_state") == "fail"
            except OSError:
                return False
        # Once the others agree the victim failed, and until its replica
        # takes over, the live primaries answer CLUSTERDOWN (retried). The
        # window is short: if it is missed, the records are simply posted
        # after the promotion.
        try:
            wait_for(failed_state, 10, "cluster_state:fail", interval=0.02)
        except AssertionError:
            pass
        late = riders(["late%d" % i for i in range(300)], seq=10)
        self.post(late)
        outage += late
        promoted = self.cluster.wait_promoted()
        self.assertEqual(set(self.cluster.primaries()), {promoted, other, third})
        # Only records posted after the promotion are checked: what victim
        # acknowledged before SIGKILL may not have reached its replica yet
        # (Redis replicates asynchronously), so it can be lost by Redis
        # itself, whatever ingestd does.
        after = riders(["post%d" % i for i in range(900)], seq=1)
        owned = set(self.cluster.slots_of(promoted))
        self.assertTrue(any(key_slot(r["device_id"]) in owned for r in after))
        self.post(after)
        self.wait_hashes(expected_riders(after + outage), timeout=60)
        self.assertGreater(self.metric("ingestd_redis_cluster_refreshes_total"), refreshes)
        self.assertGreater(self.metric("ingestd_redis_node_commands_total",
                                       node=promoted.address), 0)
        wait_for(lambda: self.metric("ingestd_redis_cluster_primaries") == 3, 30,
                 "three primaries in ingestd's map")
        self.assertEqual(self.metric("ingestd_output_dead_letter_records_total"), 0)


class TlsClusterTest(ClusterTestCase):
    def setUp(self):
        self.cluster = RedisCluster(tls=True)
        self.addCleanup(self.cluster.stop)
        self.cluster.start()

    def test_records_arrive_over_tls_as_an_rbac_user_on_all_three_primaries(self):
        # ElastiCache Serverless: TLS and an RBAC user on every node. ACL
        # users are per node in Redis Cluster, so each gets its own.
        primaries = self.cluster.primaries()
        for node in primaries + self.cluster.replicas():
            node.call("ACL", "SETUSER", "ingestd", "on", ">s3cret-rider-pass", "~*", "+@all")
        d = self.start_daemon(tls_options(self.cluster.pki) + "\n" + cluster_options()
                              + '\nusername = "ingestd"\npassword = "s3cret-rider-pass"',
                              seed=primaries[0])
        records = riders(["t%d" % i for i in range(1000)], seq=3)
        self.post(records)
        self.wait_hashes(expected_riders(records))
        self.assert_every_primary_got_commands(primaries)
        self.assertEqual(self.metric("ingestd_redis_redirections_total"), 0)
        self.assertNotRegex(d.log_text(), r"failed")
        for node in primaries:  # ingestd's connection to each is the RBAC user's
            self.assertIn("user=ingestd", node.call("CLIENT", "LIST"), node.address)
        self.assertNotIn("s3cret-rider-pass", d.log_text())


class CheckTest(unittest.TestCase):
    """ingestd -t: what cannot work in a cluster is refused before start."""

    def check(self, commands, extra):
        d = Daemon(config("127.0.0.1:7000", commands, "cluster = true\n" + extra))
        self.addCleanup(shutil.rmtree, d.dir, True)
        return run_ingestd(["-t", "-c", d.config_path, "--plugins-dir", PLUGINS])

    def test_if_newer_keys_in_different_slots_are_refused_hash_tags_accepted(self):
        code, _, err = self.check([["HSET", "rider:{device_id}", "lat", "{lat}"]],
                                  'if_newer = "ts"')
        self.assertNotEqual(code, 0, err)
        self.assertIn("slot", err)
        self.assertIn("{{{", err)
        code, _, err = self.check([["HSET", "rider:{{{device_id}}}", "lat", "{lat}"]],
                                  'if_newer = "ts"\nif_newer_key = "rider:{{{device_id}}}:ts"')
        self.assertEqual(code, 0, err)

    def test_db_other_than_0_is_refused(self):
        code, _, err = self.check(RIDER, "db = 3")
        self.assertNotEqual(code, 0, err)
        self.assertIn("database 0", err)
        code, _, err = self.check(RIDER, "")
        self.assertEqual(code, 0, err)


class NotAClusterTest(ClusterTestCase):
    def test_plain_server_is_logged_and_records_wait(self):
        redis = RedisServer(tcp=True).start()
        self.addCleanup(redis.stop)
        address = "127.0.0.1:%d" % redis.port
        d = Daemon(config(address, RIDER, "cluster = true"), shutdown_timeout="1s")
        self.addCleanup(shutil.rmtree, d.dir, True)
        d.start()
        self.addCleanup(self.stop_daemon, d)
        self.d = d
        self.post(riders(["n%d" % i for i in range(10)]))
        d.wait_log(r"(?m)^(?=.*%s)(?=.*cluster support (is )?disabled)" % re.escape(address))
        # Waiting, not lost: still queued, nothing written, nothing dead-lettered.
        wait_for(lambda: self.metric("ingestd_output_queue_records") == 10, 10,
                 "10 records queued")
        c = redis.client()
        self.addCleanup(c.close)
        self.assertEqual(c("DBSIZE"), 0)
        self.assertEqual(self.metric("ingestd_output_records_total"), 0)
        self.assertEqual(self.metric("ingestd_output_dead_letter_records_total"), 0)


if __name__ == "__main__":
    unittest.main()
