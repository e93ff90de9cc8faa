"""The .deb built by build_deb.sh (fixture pkg_deb): control fields, files,
the install layout of `cmake --install`, and the packaged daemon checking
its shipped config with its own plugins."""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from needs import require_tool
from pkgtest import DEB_DIR, deb_file, multiarch, read, run

MA = multiarch()
PLUGINDIR = "/usr/lib/%s/ingestd/plugins" % MA

EXPECTED = [
    "./usr/bin/ingestd",
    "." + PLUGINDIR + "/in_trace.so",
    "." + PLUGINDIR + "/in_actions.so",
    "." + PLUGINDIR + "/in_metadata.so",
    "." + PLUGINDIR + "/out_stdout.so",
    "." + PLUGINDIR + "/out_null.so",
    "./etc/ingestd/ingestd.toml",
    "./etc/ingestd/conf.d/",
    "./var/lib/ingestd/",
    "./lib/systemd/system/ingestd.service",
    "./usr/include/ingestd/plugin.h",
    "./usr/lib/%s/pkgconfig/ingestd-plugin.pc" % MA,
    "./usr/share/man/man8/ingestd.8.gz",
    "./usr/share/man/man5/ingestd.conf.5.gz",
    "./usr/share/man/man7/ingestd-plugin.7.gz",
    "./usr/share/doc/ingestd/examples/low-port.conf",
    "./usr/share/doc/ingestd/examples/plugin-hello/Makefile",
]


def control(field, text):
    m = re.search(r"(?m)^ %s: (.*)$" % field, text)
    return m.group(1) if m else None


class Deb(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.deb = deb_file()
        cls.root = os.path.join(DEB_DIR, "root")
        cls.destdir = os.path.join(DEB_DIR, "destdir")
        cls.info = run(["dpkg-deb", "-I", cls.deb]).stdout
        cls.files = [l.split()[-1] for l in run(["dpkg-deb", "-c", cls.deb]).stdout.splitlines()]

    def test_control(self):
        self.assertEqual(control("Package", self.info), "ingestd")
        self.assertEqual(control("Section", self.info), "net")
        depends = [d.strip().split()[0] for d in control("Depends", self.info).split(",")]
        # From dpkg-shlibdeps over the daemon and the plugins, plus adduser.
        for want in ("adduser", "libc6", "libuv1", "libstdc++6", "zlib1g"):
            self.assertIn(want, depends, self.info)
        self.assertTrue([d for d in depends if d.startswith("libhiredis")], depends)
        self.assertFalse([d for d in depends if d.endswith("-dev")], depends)
        for script in ("postinst", "prerm", "postrm", "conffiles"):
            self.assertRegex(self.info, r"(?m)^ +\d+ bytes, +\d+ lines +\*? *%s" % script)

    def test_conffiles(self):
        tmp = os.path.join(DEB_DIR, "control")
        shutil.rmtree(tmp, ignore_errors=True)
        run(["dpkg-deb", "-e", self.deb, tmp])
        self.assertEqual(read(os.path.join(tmp, "conffiles")).split(), ["/etc/ingestd/ingestd.toml"])
        for s in ("postinst", "prerm", "postrm"):
            self.assertTrue(os.access(os.path.join(tmp, s), os.X_OK), s)
        # Everything under /etc that is a file is a conffile.
        etc = [f[1:] for f in self.files if f.startswith("./etc/") and not f.endswith("/")]
        self.assertEqual(etc, ["/etc/ingestd/ingestd.toml"])

    def test_files(self):
        for f in EXPECTED:
            self.assertIn(f, self.files)
        # Nothing under /usr/local, nothing of the build tree.
        self.assertFalse([f for f in self.files if "/usr/local" in f or "CMakeFiles" in f])

    def test_install_layout_matches_package(self):
        """`DESTDIR=... cmake --install` installs what the .deb holds."""
        staged = set()
        for dirpath, dirnames, filenames in os.walk(self.destdir):
            rel = "." + dirpath[len(self.destdir):]
            for d in dirnames:
                staged.add(os.path.join(rel, d) + "/")
            for f in filenames:
                staged.add(os.path.join(rel, f))
        packaged = set(self.files) - {"./"}
        self.assertEqual(sorted(staged ^ packaged), [])

    def test_shipped_config_passes_check(self):
        r = run([self.root + "/usr/bin/ingestd", "-t", "-c", self.root + "/etc/ingestd/ingestd.toml",
                 "--plugins-dir", self.root + PLUGINDIR], check=False)
        self.assertEqual(r.returncode, 0, r.stderr)

    def test_compiled_in_paths(self):
        # The binary's default plugins dir is where the package puts plugins
        # and what ingestd-plugin.pc calls plugindir.
        r = run([self.root + "/usr/bin/ingestd", "--list-plugins"], check=False)
        self.assertIn("plugins in %s:" % PLUGINDIR, r.stdout)
        r = run([self.root + "/usr/bin/ingestd", "--help"])
        self.assertIn("default /etc/ingestd/ingestd.toml", r.stdout)
        pc = read(self.root + "/usr/lib/%s/pkgconfig/ingestd-plugin.pc" % MA)
        self.assertIn("prefix=/usr\n", pc)
        env = dict(os.environ, PKG_CONFIG_PATH=self.root + "/usr/lib/%s/pkgconfig" % MA,
                   PKG_CONFIG_SYSROOT_DIR="")
        v = run(["pkg-config", "--variable=plugindir", "ingestd-plugin"], env=env).stdout.strip()
        self.assertEqual(v, PLUGINDIR)
        abi = run(["pkg-config", "--variable=abi_version", "ingestd-plugin"], env=env).stdout.strip()
        self.assertRegex(abi, r"^\d+\.\d+$")
        version = run([self.root + "/usr/bin/ingestd", "--version"]).stdout
        self.assertIn("plugin ABI %s" % abi, version)

    def test_not_sanitized_and_stripped(self):
        r = run(["ldd", self.root + "/usr/bin/ingestd"])
        self.assertNotIn("libasan", r.stdout)
        r = run(["file", "-L", self.root + "/usr/bin/ingestd"])
        self.assertIn("stripped", r.stdout)
        self.assertNotIn("not stripped", r.stdout)

    def test_man_pages_render(self):
        for page in glob.glob(self.root + "/usr/share/man/man*/*.gz"):
            r = subprocess.run(["man", "-l", page], capture_output=True, text=True,
                               env=dict(os.environ, MANWIDTH="80"))
            self.assertEqual(r.returncode, 0, page + r.stderr)
            self.assertIn("NAME", r.stdout, page)
            self.assertEqual(r.stderr.strip(), "", page)

    def test_unit_verifies(self):
        require_tool("systemd-analyze")
        # The packaged unit, its Exec lines pointed at the extracted binary;
        # Documentation= must find the package's own man pages.
        tmp = tempfile.mkdtemp(prefix="ingestd-unit-")
        unit = read(self.root + "/lib/systemd/system/ingestd.service")
        self.assertIn("ExecStart=/usr/bin/ingestd -c /etc/ingestd/ingestd.toml\n", unit)
        path = os.path.join(tmp, "ingestd.service")
        with open(path, "w") as f:
            f.write(unit.replace("/usr/bin/ingestd", self.root + "/usr/bin/ingestd"))
        env = dict(os.environ, MANPATH=self.root + "/usr/share/man")
        r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True, text=True,
                           env=env)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertEqual(r.stderr.strip(), "")

if __name__ == "__main__":
    unittest.main()
