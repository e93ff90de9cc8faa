"""Shared helpers of the packaging tests: where things are."""

import glob
import os
import subprocess

SOURCE = os.path.abspath(os.environ.get("INGESTD_SOURCE",
                                        os.path.join(os.path.dirname(__file__), "..", "..")))
PACKAGING = os.path.join(SOURCE, "packaging")
DEB_DIR = os.environ.get("PKG_DEB_DIR", "")
BIN = os.environ.get("INGESTD_BIN", "ingestd")
PLUGINS = os.environ.get("INGESTD_PLUGINS", "")


def multiarch():
    try:
        return subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], check=True,
                              capture_output=True, text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return subprocess.run(["gcc", "-print-multiarch"], capture_output=True,
                              text=True).stdout.strip()


def deb_file():
    debs = glob.glob(os.path.join(DEB_DIR, "ingestd_*.deb"))
    assert len(debs) == 1, "expected one .deb in %s, found %s" % (DEB_DIR, debs)
    return debs[0]


def run(cmd, check=True, **kw):
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if check and r.returncode != 0:
        raise AssertionError("%s exited %d:\n%s%s" % (" ".join(cmd), r.returncode, r.stdout,
                                                     r.stderr))
    return r


def read(path):
    with open(path) as f:
        return f.read()
