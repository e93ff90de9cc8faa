"""The plugin SDK: examples/plugin-hello builds out of tree against the
installed SDK only (the DESTDIR install of the Release build, found through
PKG_CONFIG_PATH / PKG_CONFIG_SYSROOT_DIR), installs into pkg-config's
plugindir, and the daemon from the .deb loads it and runs records through it.
"""

import glob
import os
import shutil
import tempfile
import unittest

import harness
from pkgtest import DEB_DIR, SOURCE, multiarch, run

MA = multiarch()
PLUGINDIR = "/usr/lib/%s/ingestd/plugins" % MA


class Sdk(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.sdk = os.path.join(DEB_DIR, "destdir")  # DESTDIR=... cmake --install
        cls.root = os.path.join(DEB_DIR, "root")    # dpkg -x of the .deb
        cls.tmp = tempfile.mkdtemp(prefix="ingestd-sdk-")
        # Out of tree: a copy of the example, far from the source tree and its headers.
        cls.src = os.path.join(cls.tmp, "plugin-hello")
        shutil.copytree(os.path.join(SOURCE, "examples", "plugin-hello"), cls.src)
        cls.stage = os.path.join(cls.tmp, "stage")
        env = dict(os.environ, PKG_CONFIG_PATH=cls.sdk + "/usr/lib/%s/pkgconfig" % MA,
                   PKG_CONFIG_SYSROOT_DIR=cls.sdk, PKG_CONFIG_LIBDIR="")
        env.pop("ASAN_OPTIONS", None)
        cls.build = run(["make", "-C", cls.src], env=env)
        run(["make", "-C", cls.src, "install", "DESTDIR=" + cls.stage], env=env)
        cls.plugins = cls.stage + PLUGINDIR
        # The packaged plugins beside it, as on a host with the package.
        for so in glob.glob(cls.root + PLUGINDIR + "/*.so"):
            shutil.copy(so, cls.plugins)
        cls.bin = cls.root + "/usr/bin/ingestd"

    def test_built_against_installed_header_only(self):
        out = self.build.stdout
        self.assertIn("-I" + self.sdk + "/usr/include", out)
        # Never the source tree's header (the build tree may live inside it).
        self.assertNotIn(os.path.join(SOURCE, "core", "include"), out)
        self.assertTrue(os.path.exists(self.plugins + "/filter_hello.so"))
        # Only the descriptor is exported.
        syms = run(["nm", "-D", "--defined-only", self.plugins + "/filter_hello.so"]).stdout
        exported = [l.split()[-1] for l in syms.splitlines() if " T " in l or " D " in l or
                    " R " in l]
        self.assertEqual(exported, ["ingestd_plugin_v1"])

    def test_listed(self):
        r = run([self.bin, "--list-plugins", "-v", "--plugins-dir", self.plugins])
        self.assertRegex(r.stdout, r"(?m)^  filter +hello +Writes a greeting")
        self.assertRegex(r.stdout, r"(?m)^    message +string +default hello$")

    def write(self, name, text):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    CONFIG = """
[service]
workers = 1
admin = "127.0.0.1:0"
storage_dir = "{dir}"

[listeners.public]
listen = "127.0.0.1:0"

[inputs.trace]
plugin = "http"
listener = "public"
path = "/v1/trace"

[filters.greet]
plugin = "hello"
{options}

[outputs.console]
plugin = "stdout"
flush_interval = "50ms"

[[routes]]
match = "trace"
filters = ["greet"]
to = ["console"]
"""

    def test_config_check(self):
        ok = self.write("ok.toml", self.CONFIG.format(dir=self.tmp, options='message = "hi"'))
        r = run([self.bin, "-t", "-c", ok, "--plugins-dir", self.plugins], check=False)
        self.assertEqual(r.returncode, 0, r.stderr)
        # The option table is enforced by the host, the rest by the plugin's init.
        bad = self.write("bad.toml", self.CONFIG.format(dir=self.tmp, options="mesage = 1"))
        r = run([self.bin, "-t", "-c", bad, "--plugins-dir", self.plugins], check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("bad.toml:", r.stderr)
        self.assertIn("mesage", r.stderr)
        empty = self.write("empty.toml", self.CONFIG.format(dir=self.tmp, options='field = ""'))
        r = run([self.bin, "-t", "-c", empty, "--plugins-dir", self.plugins], check=False)
        self.assertEqual(r.returncode, 1)
        self.assertIn("field must not be empty", r.stderr)

    def test_records_pass_through_it(self):
        harness.BIN = self.bin
        harness.PLUGINS = self.plugins
        body = self.CONFIG.format(dir=self.tmp, options='message = "hi"\noverwrite = false')
        # The harness writes its own [service] and listener: keep only the rest.
        body = body[body.index("[inputs.trace]"):]
        d = harness.Daemon(body).start()
        try:
            status, text, _ = d.post("/v1/trace", [{"device_id": "d1"},
                                                   {"device_id": "d2", "greeting": "own"}])
            self.assertEqual(status, 200, text)
            got = sorted([d.next_record(), d.next_record()], key=lambda r: r["device_id"])
            self.assertEqual(got, [{"device_id": "d1", "greeting": "hi"},
                                   {"device_id": "d2", "greeting": "own"}])
            self.assertEqual(d.metric("ingestd_hello_greeted_records_total"), 1)
            self.assertEqual(d.stop(), 0, d.log_text())
        finally:
            d.kill()


if __name__ == "__main__":
    unittest.main()
