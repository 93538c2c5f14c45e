#!/usr/bin/env bash
# Runs every fuzz target (name:package pairs as arguments) for FUZZTIME: a duration (10m)
# or an execution count (5000x). A crasher is written to the package's testdata/fuzz and
# from then on runs in the unit suite as a regression test.
#
# Go 1.26's fuzz coordinator can fail a duration-limited run with a bare "context deadline
# exceeded" at the deadline, writing no crasher (go.dev/issue/75804, fixed in Go 1.27).
# Such a run is reported as that flake and not counted as a failure; any other failure, or
# any run that wrote a new reproducer, fails. Count-limited runs cannot hit the race.
set -uo pipefail
FUZZTIME=${FUZZTIME:-10m}
GO=${GO:-go}
failed=0
for t in "$@"; do
  name=${t%%:*} pkg=${t#*:}
  corpus="$pkg/testdata/fuzz/$name"
  before=$(ls "$corpus" 2>/dev/null | wc -l)
  echo "== $name in $pkg for $FUZZTIME"
  out=$("$GO" test -run '^$' -fuzz "^$name\$" -fuzztime "$FUZZTIME" "$pkg" 2>&1)
  rc=$?
  echo "$out" | grep -v '^fuzz: elapsed'
  after=$(ls "$corpus" 2>/dev/null | wc -l)
  if [ $rc -ne 0 ]; then
    if [ "$after" -eq "$before" ] && echo "$out" | grep -qx '    context deadline exceeded'; then
      echo "   (Go fuzz coordinator deadline race, go.dev/issue/75804: no crasher written; not a failure)"
    else
      echo "   FAILED: $name (see $corpus for the reproducer)"
      failed=1
    fi
  fi
done
exit $failed
