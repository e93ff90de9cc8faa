"""packaging/container/Dockerfile, checked statically (no Docker engine here).

Parses the Dockerfile's instructions (continuation lines joined) and checks
the stages, the runtime user, ports, entrypoint, health check, and that every
file it copies from the build context exists. The image's default config
must pass `ingestd -t` with the plugins of this build.
"""

import json
import os
import re
import shlex
import unittest

from pkgtest import BIN, PACKAGING, PLUGINS, SOURCE, read, run

DOCKERFILE = os.path.join(PACKAGING, "container", "Dockerfile")


def instructions(path):
    out = []
    pending = ""
    for line in read(path).splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.lstrip().startswith("#"):
            continue  # a comment inside a continued instruction
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        full = pending + line
        pending = ""
        word, _, rest = full.strip().partition(" ")
        out.append((word.upper(), rest.strip()))
    return out


class Dockerfile(unittest.TestCase):
    def setUp(self):
        self.ins = instructions(DOCKERFILE)
        self.stages = []
        for word, rest in self.ins:
            if word == "FROM":
                self.stages.append({"from": rest, "ins": []})
            else:
                self.assertTrue(self.stages, "instruction before FROM: " + word)
                self.stages[-1]["ins"].append((word, rest))

    def all(self, stage, word):
        return [r for w, r in stage["ins"] if w == word]

    def test_multi_stage_on_debian_12_slim(self):
        self.assertEqual(len(self.stages), 2)
        self.assertEqual(self.stages[0]["from"], "debian:12-slim AS build")
        self.assertEqual(self.stages[1]["from"], "debian:12-slim")

    def test_build_stage(self):
        runs = " ".join(self.all(self.stages[0], "RUN"))
        self.assertIn("/src/packaging/install-deps", runs)
        self.assertIn("-DCMAKE_BUILD_TYPE=Release", runs)
        self.assertIn("-DCMAKE_INSTALL_PREFIX=/usr", runs)
        self.assertIn("cpack -G DEB", runs)

    def test_runtime_stage(self):
        rt = self.stages[1]
        runs = " ".join(self.all(rt, "RUN"))
        # Runtime libraries only: the .deb's Depends, resolved by apt; no -dev.
        self.assertIn("apt-get install", runs)
        self.assertNotRegex(runs, r"\S+-dev\b")
        self.assertIn("rm -rf /var/lib/apt/lists", runs)
        users = self.all(rt, "USER")
        self.assertEqual(len(users), 1)
        uid = users[0].split(":")[0]
        self.assertNotIn(uid, ("root", "0"))
        self.assertTrue(uid.isdigit(), "numeric uid, so runAsNonRoot can verify it")
        self.assertIn("--uid " + uid, runs)
        ports = " ".join(self.all(rt, "EXPOSE")).split()
        self.assertEqual(sorted(ports), ["2020", "8080"])
        self.assertEqual(json.loads(self.all(rt, "ENTRYPOINT")[0]),
                         ["/usr/bin/ingestd", "-c", "/etc/ingestd/ingestd.toml"])
        self.assertEqual(self.all(rt, "STOPSIGNAL"), ["SIGTERM"])
        hc = self.all(rt, "HEALTHCHECK")
        self.assertEqual(len(hc), 1)
        self.assertRegex(hc[0], r"CMD .*curl.*127\.0\.0\.1:2020/readyz")
        self.assertFalse(self.all(rt, "CMD"), "ENTRYPOINT only: ingestd is PID 1 itself")

    def test_copied_sources_exist(self):
        for stage in self.stages:
            for w, rest in stage["ins"]:
                if w != "COPY" or rest.startswith("--from="):
                    continue
                srcs = shlex.split(rest)[:-1]
                for s in srcs:
                    self.assertTrue(os.path.exists(os.path.join(SOURCE, s)), s)

    def test_image_config_is_valid(self):
        cfg = os.path.join(PACKAGING, "container", "ingestd.toml")
        text = read(cfg)
        self.assertRegex(text, r'(?m)^admin = "0\.0\.0\.0:2020"', "probes come from outside")
        self.assertRegex(text, r'(?m)^listen = "0\.0\.0\.0:8080"')
        r = run([BIN, "-t", "-c", cfg, "--plugins-dir", PLUGINS], check=False)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_dockerignore(self):
        ignore = read(os.path.join(PACKAGING, "container", "Dockerfile.dockerignore"))
        self.assertTrue(re.search(r"(?m)^build\*$", ignore))


if __name__ == "__main__":
    unittest.main()
