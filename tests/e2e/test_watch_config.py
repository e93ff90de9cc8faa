"""watch_config = true: a changed file under conf.d reloads the config without a
signal, including the symlink swap a Kubernetes ConfigMap update does."""

import os
import unittest

from harness import Daemon, wait_for

MAIN_EXTRA = """
[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[outputs.console]
plugin = "stdout"
flush_interval = "10ms"

[[routes]]
match = "trace"
filters = ["mark"]
to = ["console"]
"""

FILTER = """
[filters.mark]
plugin = "modify"
set = {{ version = "{v}" }}
"""


class WatchConfigTest(unittest.TestCase):
    def start(self, use_symlinks):
        d = Daemon(MAIN_EXTRA)
        # watch_config goes into [service]: the base config writes that table.
        with open(d.config_path) as f:
            text = f.read().replace("[service]\n", "[service]\nwatch_config = true\n", 1)
        d.write_config(text)
        confd = os.path.join(d.dir, "conf.d")
        os.makedirs(confd)
        if use_symlinks:
            # The layout kubelet gives a mounted ConfigMap.
            self.write_version(confd, "v1", "..2026_v1")
            os.symlink("..2026_v1", os.path.join(confd, "..data"))
            os.symlink("..data/mark.toml", os.path.join(confd, "mark.toml"))
        else:
            with open(os.path.join(confd, "mark.toml"), "w") as f:
                f.write(FILTER.format(v="v1"))
        return d.start(), confd

    @staticmethod
    def write_version(confd, v, name):
        os.makedirs(os.path.join(confd, name))
        with open(os.path.join(confd, name, "mark.toml"), "w") as f:
            f.write(FILTER.format(v=v))

    def roundtrip(self, d):
        self.assertEqual(d.post("/v1/trace", {"device_id": "x"})[0], 200)
        return d.next_record()["version"]

    def test_edit_in_conf_d_reloads(self):
        d, confd = self.start(use_symlinks=False)
        try:
            self.assertEqual(self.roundtrip(d), "v1")
            with open(os.path.join(confd, "mark.toml"), "w") as f:
                f.write(FILTER.format(v="v2"))
            d.wait_log(r"configuration reloaded \(generation 2\)")
            self.assertEqual(self.roundtrip(d), "v2")
            self.assertIn("watch_config: a configuration file changed", d.log_text())
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())

    def test_configmap_symlink_swap_reloads_once(self):
        d, confd = self.start(use_symlinks=True)
        try:
            self.assertEqual(self.roundtrip(d), "v1")
            self.write_version(confd, "v2", "..2026_v2")
            tmp = os.path.join(confd, "..data_tmp")
            os.symlink("..2026_v2", tmp)
            os.rename(tmp, os.path.join(confd, "..data"))
            d.wait_log(r"configuration reloaded \(generation 2\)")
            self.assertEqual(self.roundtrip(d), "v2")
            # A change in the directory that changes no config content does
            # not reload again.
            with open(os.path.join(confd, "README.txt"), "w") as f:
                f.write("not a config file\n")
            d.wait_log(r"watch_config: files were touched, no content changed")
            self.assertEqual(self.roundtrip(d), "v2")
            self.assertNotIn("generation 3", d.log_text())
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())

    def test_broken_edit_keeps_running_config(self):
        d, confd = self.start(use_symlinks=False)
        try:
            with open(os.path.join(confd, "mark.toml"), "w") as f:
                f.write("[filters.mark]\nplugin = 'modify'\nset = 3\n")
            d.wait_log(r"reload refused")
            self.assertEqual(self.roundtrip(d), "v1")
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())


if __name__ == "__main__":
    unittest.main()
