#!/usr/bin/env bash
# make mutate: mutation testing of the files given (module-relative .go files or package
# directories; the Makefile's FILES), with gremlins' mutants and the team's own list
# (tools/mutate). Not part of make test: about an hour for the default list on two cores.
#
# Builds, into the git-ignored .tools/bin/:
#   - gremlins v0.6.0, from the tools module tools/mutate (its tool directive), so that its
#     dependencies never touch the plugin's go.mod; once, and again only when that module's
#     go.mod/go.sum or Go itself changes;
#   - the runner, tools/mutate itself (go build is incremental: a second or two).
# Then runs it with MUTATE_SEEDS seeds of the simulation per mutant (default 300) and
# MUTATE_WORKERS mutants at a time (default 2). Its results: a table per file and every
# survivor on stdout, every mutant in .tools/mutate/results.tsv, the README's table in
# .tools/mutate/table.md. Mutant builds use their own Go build cache, .tools/mutate/gocache
# (each build, one per file's schema and one per declaration mutant, leaves a few MB there
# that nothing reuses; Go trims entries unused for 5 days; deleting it costs one rebuild of
# the plugin's dependencies).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
module="$root/tools/mutate"
bin="$root/.tools/bin"
mkdir -p "$bin"
if [ $# -eq 0 ]; then
  echo "usage: scripts/mutate.sh FILE|DIR... (make mutate FILES=\"settle.go backend/bloq\")" >&2
  exit 2
fi
sum=$({ cat "$module/go.mod" "$module/go.sum"; go version; } | sha256sum | cut -d' ' -f1)
if [ ! -x "$bin/gremlins" ] || [ "$(cat "$bin/gremlins.sum" 2>/dev/null)" != "$sum" ]; then
  echo "Building gremlins v0.6.0 from the Go module proxy into .tools/bin (once)..." >&2
  (cd "$module" && go build -o "$bin/gremlins.partial" github.com/go-gremlins/gremlins/cmd/gremlins)
  mv "$bin/gremlins.partial" "$bin/gremlins"
  echo "$sum" >"$bin/gremlins.sum"
fi
(cd "$module" && go build -o "$bin/mutate" .)
exec "$bin/mutate" -root "$root" -gremlins "$bin/gremlins" -seeds "${MUTATE_SEEDS:-300}" \
  -workers "${MUTATE_WORKERS:-2}" "$@"
