"""Plugin-boundary contracts seen from outside: a failed `modify` rename keeps
the record as it was (and is counted), and a plugin that could not be loaded
is tried again on the next reload (a failed load is not cached)."""

import os
import shutil
import signal
import tempfile
import unittest

import harness
from harness import BASE_CONFIG, Daemon, wait_for

RENAME = """
[inputs.any]
plugin = "http"
listener = "public"
path = "/v1/any"

[filters.fix]
plugin = "modify"
rename = { a = "b.c" }

[outputs.console]
plugin = "stdout"
flush_interval = "10ms"

[[routes]]
match = "any"
filters = ["fix"]
to = ["console"]
"""

PLAIN = """
[inputs.any]
plugin = "http"
listener = "public"
path = "/v1/any"

[outputs.console]
plugin = "stdout"
flush_interval = "10ms"
{extra}
[[routes]]
match = "any"
to = [{to}]
"""


class ModifyRenameTest(unittest.TestCase):
    def test_rename_onto_a_non_object_keeps_the_field_and_counts_it(self):
        d = Daemon(RENAME).start()
        try:
            self.assertEqual(d.post("/v1/any", {"a": 1, "b": "x"})[0], 200)
            self.assertEqual(d.next_record(), {"a": 1, "b": "x"})
            self.assertEqual(d.post("/v1/any", {"a": 2, "b": "y"})[0], 200)
            self.assertEqual(d.next_record(), {"a": 2, "b": "y"})
            # A record where the target can be set is still renamed.
            self.assertEqual(d.post("/v1/any", {"a": 3})[0], 200)
            self.assertEqual(d.next_record(), {"b": {"c": 3}})
            wait_for(lambda: d.metric("ingestd_modify_rename_failed_total", filter="fix") == 2,
                     what="rename failure counter")
            # Warned once, not once per record.
            self.assertEqual(d.log_text().count("cannot rename 'a' to 'b.c'"), 1, d.log_text())
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())


class PluginRetryTest(unittest.TestCase):
    def setUp(self):
        # A plugins directory of our own, holding only what the first config uses.
        self.plugins = tempfile.mkdtemp(prefix="ingestd-plugins-")
        for so in ("in_http.so", "out_stdout.so"):
            shutil.copy(os.path.join(harness.PLUGINS, so), self.plugins)
        self.saved = harness.PLUGINS
        harness.PLUGINS = self.plugins  # Daemon.start() passes it as --plugins-dir

    def tearDown(self):
        harness.PLUGINS = self.saved
        shutil.rmtree(self.plugins, ignore_errors=True)

    def test_plugin_installed_after_a_refused_reload_loads_on_the_next(self):
        d = Daemon(PLAIN.format(extra="", to='"console"')).start()
        try:
            header = BASE_CONFIG.format(workers=1, dir=d.dir, shutdown_timeout="5s",
                                        log_level="info")
            more = PLAIN.format(extra='\n[outputs.hole]\nplugin = "null"\n',
                                to='"console", "hole"')
            d.write_config(header + more)
            d.signal(signal.SIGHUP)
            d.wait_log(r"reload refused: 1 error")
            self.assertIn("no output plugin 'null'", d.log_text())
            shutil.copy(os.path.join(self.saved, "out_null.so"), self.plugins)
            d.signal(signal.SIGHUP)
            d.wait_log(r"configuration reloaded \(generation 2\)")
            self.assertEqual(d.post("/v1/any", {"k": "v"})[0], 200)
            self.assertEqual(d.next_record(), {"k": "v"})
            wait_for(lambda: d.metric("ingestd_reloads_total") == 1, what="reload counter")
        finally:
            self.assertEqual(d.stop(), 0, d.log_text())


if __name__ == "__main__":
    unittest.main()
