"""The .deb's maintainer scripts, run against stub commands.

Every command the scripts run (adduser, chown, deb-systemd-helper, rm...) is
a stub on PATH that records its arguments, so the scripts' decisions are
checked without touching this host.
"""

import os
import stat
import subprocess
import tempfile
import unittest

from pkgtest import PACKAGING, read

STUBS = ["adduser", "getent", "mkdir", "chown", "chmod", "chgrp", "rm", "rmdir",
         "deb-systemd-helper", "deb-systemd-invoke", "systemctl", "dpkg-statoverride"]


class MaintScripts(unittest.TestCase):
    def run_script(self, name, *args, user_exists=False):
        tmp = tempfile.mkdtemp(prefix="ingestd-maint-")
        log = os.path.join(tmp, "calls")
        for s in STUBS:
            path = os.path.join(tmp, s)
            status = 0
            if s == "getent" and not user_exists:
                status = 2
            if s == "dpkg-statoverride":
                status = 1  # no override
            if s == "deb-systemd-helper":
                # was-enabled: true on a fresh install (as the real helper)
                status = 0
            with open(path, "w") as f:
                f.write("#!/bin/sh\necho \"%s $*\" >> %s\nexit %d\n" % (s, log, status))
            os.chmod(path, stat.S_IRWXU)
        env = {"PATH": tmp + ":/usr/bin:/bin"}
        script = os.path.join(PACKAGING, "deb", name)
        r = subprocess.run(["sh", "-e", script] + list(args), env=env, capture_output=True,
                           text=True)
        self.assertEqual(r.returncode, 0, r.stderr)
        return read(log).splitlines() if os.path.exists(log) else []

    def test_syntax_and_modes(self):
        for name in ("postinst", "prerm", "postrm"):
            path = os.path.join(PACKAGING, "deb", name)
            subprocess.run(["sh", "-n", path], check=True)
            self.assertTrue(os.stat(path).st_mode & stat.S_IXUSR, name + " not executable")
            self.assertTrue(read(path).startswith("#!/bin/sh\n"), name)
        self.assertEqual(read(os.path.join(PACKAGING, "deb", "conffiles")).split(),
                         ["/etc/ingestd/ingestd.toml"])

    def test_postinst_fresh_install(self):
        calls = self.run_script("postinst", "configure")
        adduser = [c for c in calls if c.startswith("adduser ")]
        self.assertEqual(len(adduser), 1, calls)
        for flag in ("--system", "--group", "--home /var/lib/ingestd", "--no-create-home"):
            self.assertIn(flag, adduser[0])
        self.assertTrue(adduser[0].endswith(" ingestd"), adduser[0])
        self.assertIn("chown ingestd:ingestd /var/lib/ingestd", calls)
        self.assertIn("chmod 0750 /var/lib/ingestd", calls)
        self.assertIn("deb-systemd-helper enable ingestd.service", calls)

    def test_postinst_user_exists(self):
        calls = self.run_script("postinst", "configure", "0.1.0-1", user_exists=True)
        self.assertFalse([c for c in calls if c.startswith("adduser ")], calls)

    def test_prerm_and_purge(self):
        self.run_script("prerm", "remove")  # stops only when systemd runs
        calls = self.run_script("postrm", "purge")
        self.assertIn("rm -rf /var/lib/ingestd", calls)
        self.assertIn("deb-systemd-helper purge ingestd.service", calls)
        calls = self.run_script("postrm", "remove")
        self.assertNotIn("rm -rf /var/lib/ingestd", calls)


if __name__ == "__main__":
    unittest.main()
