"""What a test needs from the machine: a tool on PATH, or a build feature.

Locally a missing tool skips the test (and says so in unittest's output).
Under CI=true (any of true/1/yes) it FAILS the test with a message naming
the missing tool: `make test` in CI must never pass by skipping what it was
meant to check. packaging/install-deps installs every tool named here.
"""

import os
import shutil
import unittest

# tool -> Debian 12 package that installs it (packaging/install-deps).
PACKAGES = {
    "openssl": "openssl",
    "kubectl": "kubernetes-client",
    "systemd-analyze": "systemd",
    "redis-server": "redis-server",
    "ldd": "libc-bin",
    "wrk": "wrk",
}


def in_ci():
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def require(ok, what):
    """Skips (locally) or fails (CI=true) the running test unless ok."""
    if ok:
        return
    if in_ci():
        raise AssertionError("CI=true and %s: this test must not be skipped in CI "
                             "(run packaging/install-deps)" % what)
    raise unittest.SkipTest(what)


def require_tool(name):
    """The tool's path; skips locally or fails under CI=true when it is missing."""
    path = shutil.which(name)
    pkg = PACKAGES.get(name)
    require(path is not None, "%s is not installed%s" % (
        name, " (Debian package %s)" % pkg if pkg else ""))
    return path
