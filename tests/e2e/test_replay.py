"""ingestd --replay FILE --to OUTPUT: dead-letter records go out again."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import BIN, PLUGINS, run_ingestd

CONFIG = """
[service]
storage_dir = "{dir}/state"

[listeners.l]
listen = "127.0.0.1:0"

[outputs.console]
plugin = "stdout"
flush_interval = "10ms"
"""


class ReplayTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ingestd-replay-")
        self.config = os.path.join(self.dir, "ingestd.toml")
        with open(self.config, "w") as f:
            f.write(CONFIG.format(dir=self.dir))

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def dead_letters(self, records, name="old.ndjson"):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            for i, r in enumerate(records):
                f.write(json.dumps({"time": "2026-11-26T00:00:00.000Z", "output": "redis",
                                    "tag": "trace", "reason": "WRONGTYPE #%d" % i,
                                    "record": r}) + "\n")
        return path

    def replay(self, path, to="console"):
        p = subprocess.run([BIN, "-c", self.config, "--plugins-dir", PLUGINS, "--replay", path,
                            "--to", to], capture_output=True, text=True, timeout=60,
                           stdin=subprocess.DEVNULL)
        return p.returncode, p.stdout, p.stderr

    def test_every_record_is_sent_again_in_order(self):
        recs = [{"device_id": "d%d" % i, "lat": i} for i in range(50)]
        code, out, err = self.replay(self.dead_letters(recs))
        self.assertEqual(code, 0, err)
        self.assertEqual([json.loads(l) for l in out.splitlines()], recs)
        self.assertIn("replayed 50 records", err)
        self.assertIn("50 delivered, 0 dead-lettered again", err)

    def test_malformed_line_is_reported_and_nothing_is_sent(self):
        path = self.dead_letters([{"a": 1}])
        with open(path, "a") as f:
            f.write('{"not":"a dead letter"}\n')
        code, out, err = self.replay(path)
        self.assertEqual(code, 1)
        self.assertIn(path + ':2: not a dead-letter line (no "record" object)', err)
        self.assertEqual(out, "")

    def test_refuses_the_live_dead_letter_file_and_unknown_outputs(self):
        os.makedirs(os.path.join(self.dir, "state"))
        live = self.dead_letters([{"a": 1}], name="state/dead-letter.ndjson")
        code, _, err = self.replay(live)
        self.assertEqual(code, 1)
        self.assertIn("move it aside first", err)
        code, _, err = self.replay(self.dead_letters([{"a": 1}]), to="nope")
        self.assertEqual(code, 1)
        self.assertIn("no [outputs.nope]", err)
        code, _, err = run_ingestd(["--replay", "x"])
        self.assertEqual(code, 2)
        self.assertIn("--replay FILE and --to OUTPUT go together", err)


if __name__ == "__main__":
    unittest.main()
