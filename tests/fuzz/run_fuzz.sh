#!/bin/sh
# Runs one libFuzzer target for a while from the committed seed corpus.
# New inputs go to a temporary directory, never into the source tree; a crash
# leaves its reproducer in the current directory and fails the test.
#   run_fuzz.sh FUZZER SEED_DIR SECONDS
set -eu
fuzzer=$1
seeds=$2
seconds=$3
work=$(mktemp -d "${TMPDIR:-/tmp}/ingestd-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
"$fuzzer" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 \
  -print_final_stats=1 "$work" "$seeds"
