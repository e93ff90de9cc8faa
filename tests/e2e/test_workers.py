"""Worker threads: one per `workers`, named ingestd-wN, pinned with cpu_affinity."""

import os
import unittest

from harness import Daemon, wait_for

CONFIG = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[outputs.sink]
plugin = "null"

[[routes]]
match = "*"
to = ["sink"]
"""


def threads(pid):
    out = {}
    for tid in os.listdir("/proc/%d/task" % pid):
        base = "/proc/%d/task/%s/" % (pid, tid)
        try:
            with open(base + "comm") as f:
                name = f.read().strip()
            with open(base + "status") as f:
                status = f.read()
        except OSError:
            continue
        cpus = [l.split(":", 1)[1].strip() for l in status.splitlines()
                if l.startswith("Cpus_allowed_list")][0]
        out.setdefault(name, []).append(cpus)
    return out


class WorkerThreadTest(unittest.TestCase):
    def run_with(self, affinity):
        d = Daemon(CONFIG, workers=2)
        if affinity:
            with open(d.config_path) as f:
                text = f.read().replace("[service]\n", "[service]\ncpu_affinity = true\n", 1)
            d.write_config(text)
        d.start()
        try:
            t = wait_for(lambda: (lambda x: x if "ingestd-w0" in x and "ingestd-w1" in x else None)(
                threads(d.proc.pid)), what="named worker threads")
            return t
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())

    def test_workers_are_named_threads(self):
        t = self.run_with(affinity=False)
        self.assertEqual(len(t["ingestd-w0"]), 1)
        self.assertEqual(len(t["ingestd-w1"]), 1)

    def test_cpu_affinity_pins_worker_n_to_cpu_n(self):
        t = self.run_with(affinity=True)
        cores = os.cpu_count()
        self.assertEqual(t["ingestd-w0"], ["0"])
        self.assertEqual(t["ingestd-w1"], [str(1 % cores)])


if __name__ == "__main__":
    unittest.main()
