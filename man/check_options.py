#!/usr/bin/env python3
"""Checks that ingestd.conf(5) documents every option there is.

usage: check_options.py INGESTD PLUGINS_DIR ingestd.conf.5 core_options.cc

Plugin options come from `ingestd --list-plugins -v` (what the loaded
plugins declare); core options are read from the core's tables in
core_options.cc. Both must appear, each under its own section of the page,
and the page must not list options that no longer exist.
"""

import re
import subprocess
import sys

SECTION_OF_TABLE = {"kService": "service", "kListener": "listeners", "kInput": "inputs",
                    "kFilter": "filters", "kOutput": "outputs", "kRoute": "routes"}


def plugins_from_cli(binary, plugins_dir):
    out = subprocess.run([binary, "--list-plugins", "-v", "--plugins-dir", plugins_dir],
                         check=True, capture_output=True, text=True).stdout
    plugins = {}
    current = None
    for line in out.splitlines():
        m = re.match(r"^  (input|filter|output)\s+(\S+)", line)
        if m:
            current = (m.group(1), m.group(2))
            plugins[current] = set()
            continue
        m = re.match(r"^    (\S+)\s", line)
        if m and current:
            plugins[current].add(m.group(1))
    return plugins


def core_from_source(path):
    text = open(path).read()
    tables = {}
    for m in re.finditer(r"ingestd_option_t (k\w+)\[\] = \{(.*?)\n\};", text, re.S):
        tables[SECTION_OF_TABLE[m.group(1)]] = set(
            re.findall(r'\{"([a-z_0-9]+)",\s*INGESTD_OPT_', m.group(2)))
    return tables


def page_sections(path):
    """{('core', 'service'): {...}, ('output', 'redis'): {...}} from the page."""
    sections = {}
    current = None
    depth = 0
    for line in open(path):
        line = line.rstrip("\n")
        m = re.match(r"^\.Ss Options of every (\w+) section$", line)
        if m:
            current = ("core", m.group(1))
            sections[current] = set()
            continue
        m = re.match(r"^\.Ss (input|filter|output) (\S+)$", line)
        if m:
            current = (m.group(1), m.group(2))
            sections[current] = set()
            continue
        if line.startswith(".Sh") or line.startswith(".Ss"):
            current = None
            continue
        if line.startswith(".Bl"):
            depth += 1
        elif line.startswith(".El"):
            depth -= 1
        m = re.match(r"^\.It Cm (\S+)", line)
        if m and current and depth == 1:
            sections[current].add(m.group(1))
    return sections


def main():
    binary, plugins_dir, page, core_src = sys.argv[1:5]
    cli = plugins_from_cli(binary, plugins_dir)
    core = core_from_source(core_src)
    documented = page_sections(page)
    problems = []
    if len(cli) == 0:
        problems.append("ingestd --list-plugins found no plugin in " + plugins_dir)
    if set(core) != set(SECTION_OF_TABLE.values()):
        problems.append("core_options.cc: expected tables for %s, found %s"
                        % (sorted(SECTION_OF_TABLE.values()), sorted(core)))
    want = {("core", s): names for s, names in core.items()}
    want.update(cli)
    for key, names in sorted(want.items()):
        have = documented.get(key)
        if have is None:
            problems.append("%s %s: no section in the page" % key)
            continue
        for n in sorted(names - have):
            problems.append("%s %s: option %s is not documented" % (key[0], key[1], n))
        for n in sorted(have - names):
            problems.append("%s %s: the page lists %s, which does not exist" % (key[0], key[1], n))
    for key in sorted(set(documented) - set(want)):
        problems.append("%s %s: documented but not found" % key)
    for p in problems:
        print(p)
    total = sum(len(v) for v in want.values())
    print("%d sections, %d options checked; %d problems" % (len(want), total, len(problems)))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
