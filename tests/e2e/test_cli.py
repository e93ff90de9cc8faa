"""The command line: -t, --version, --list-plugins, bad arguments."""

import os
import re
import shutil
import tempfile
import unittest

from harness import PLUGINS, SOURCE, run_ingestd
from needs import require_tool
from pki import SERVER_EXT, make_ca, make_cert


class CheckConfigTest(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ingestd-cli-")

    def tearDown(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def check(self, path):
        return run_ingestd(["-t", "-c", path, "--plugins-dir", PLUGINS])

    def test_shipped_default_config_is_valid(self):
        code, _, err = self.check(os.path.join(SOURCE, "conf.d", "ingestd.toml"))
        self.assertEqual(code, 0, err)
        self.assertIn("is valid", err)

    def test_shipped_examples_are_valid(self):
        # The README promises "every example is checked with ingestd -t": the
        # examples it names must exist, and every *.toml there is checked.
        examples = os.path.join(SOURCE, "conf.d", "examples")
        self.assertTrue(os.path.isdir(examples), examples)
        names = sorted(n for n in os.listdir(examples) if n.endswith(".toml"))
        with open(os.path.join(SOURCE, "README.md")) as f:
            promised = set(re.findall(r"conf\.d/examples/([\w.-]+\.toml)", f.read()))
        promised |= {"rider-app.toml", "api-keys.toml", "fanout.toml"}  # README, Configuration
        self.assertLessEqual(promised, set(names), "examples the README names are missing")
        # The HTTPS example names certificates beside it: checked in a copy
        # that has them (no private key is shipped).
        copy = tempfile.mkdtemp(prefix="ingestd-examples-")
        self.addCleanup(shutil.rmtree, copy, True)
        shutil.copytree(examples, copy, dirs_exist_ok=True)
        require_tool("openssl")
        tls = os.path.join(copy, "tls")
        os.makedirs(tls)
        make_ca(tls, "partners-ca")
        make_cert(tls, "server", "partners-ca", SERVER_EXT)
        checked = 0
        for name in names:
            with self.subTest(example=name):
                code, _, err = self.check(os.path.join(copy, name))
                self.assertEqual(code, 0, name + ": " + err)
                self.assertIn("is valid", err, name)
                checked += 1
        self.assertEqual(checked, len(names))
        self.assertGreaterEqual(checked, 3)

    def test_broken_config_names_file_line_and_column(self):
        path = self.write("broken.toml", '[service]\nworkers = "two"\n')
        code, _, err = self.check(path)
        self.assertEqual(code, 1, err)
        self.assertRegex(err, re.escape(path) + r":2:\d+: .*workers.*integer")

    def test_toml_syntax_error(self):
        path = self.write("syntax.toml", "[service\nworkers = 1\n")
        code, _, err = self.check(path)
        self.assertEqual(code, 1, err)
        self.assertRegex(err, re.escape(path) + r":1:\d+: ")

    def test_missing_plugin_is_named_with_its_path(self):
        path = self.write("p.toml", """
[listeners.l]
listen = "127.0.0.1:0"
[outputs.k]
plugin = "kafka"
""")
        code, _, err = self.check(path)
        self.assertEqual(code, 1, err)
        self.assertRegex(err, re.escape(path) + r":\d+:\d+: .*out_kafka\.so")

    def test_route_to_unknown_output_and_input_on_unknown_listener(self):
        path = self.write("r.toml", """
[inputs.t]
plugin = "http"
listener = "nowhere"
path = "/t"
[[routes]]
match = "*"
to = ["ghost"]
""")
        code, _, err = self.check(path)
        self.assertEqual(code, 1, err)
        self.assertIn("nowhere", err)
        self.assertIn("ghost", err)
        self.assertEqual(len(re.findall(re.escape(path) + r":\d+:\d+: ", err)), 2, err)

    def test_duplicate_section_across_files_names_both(self):
        main = self.write("ingestd.toml", '[outputs.o]\nplugin = "null"\n')
        other = self.write("conf.d/10-more.toml", '\n[outputs.o]\nplugin = "null"\n')
        code, _, err = self.check(main)
        self.assertEqual(code, 1, err)
        self.assertIn(other + ":2:", err)
        self.assertIn(main + ":1:", err)

    def test_plugin_refusing_its_options_fails_the_check(self):
        path = self.write("m.toml", """
[filters.empty]
plugin = "modify"
""")
        code, _, err = self.check(path)
        self.assertEqual(code, 1, err)
        self.assertRegex(err, re.escape(path) + r":2:\d+: nothing to do")

    def test_missing_file(self):
        code, _, err = self.check(os.path.join(self.dir, "absent.toml"))
        self.assertEqual(code, 1)
        self.assertIn("absent.toml", err)


class MiscCliTest(unittest.TestCase):
    def test_version(self):
        code, out, _ = run_ingestd(["--version"])
        self.assertEqual(code, 0)
        self.assertRegex(out, r"^ingestd \d+\.\d+\.\d+ \(plugin ABI 1\.\d+\)")

    def test_list_plugins_verbose_shows_options_and_defaults(self):
        code, out, err = run_ingestd(["--list-plugins", "-v", "--plugins-dir", PLUGINS])
        self.assertEqual(code, 0, err)
        for kind, name in [("input", "http"), ("output", "stdout"), ("output", "null"),
                           ("filter", "modify")]:
            self.assertRegex(out, r"\n  %s\s+%s\s" % (kind, name))
        self.assertRegex(out, r"include_tag\s+boolean\s+default false")

    def test_unknown_argument_is_a_usage_error(self):
        code, _, err = run_ingestd(["--frobnicate"])
        self.assertEqual(code, 2)
        self.assertIn("unknown argument '--frobnicate'", err)

    def test_bad_log_level(self):
        code, _, err = run_ingestd(["--log-level", "loud", "-t", "-c", "/nonexistent"])
        self.assertEqual(code, 2)
        self.assertIn("--log-level", err)


if __name__ == "__main__":
    unittest.main()
