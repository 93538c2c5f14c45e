#!/usr/bin/env bash
# Prints the version a checkout builds as (make build, make dev): the development version in
# backend.go's `var Version` (the one source of truth, "vX.Y.Z-dev": the next release, so it
# sorts above every release before it and below that release) with the commit as semver
# build metadata, "+<short commit>", and ".dirty" when tracked files differ from it:
#
#   v0.2.0-dev+8fdcfb9        v0.2.0-dev+8fdcfb9.dirty        v0.2.0-dev (no git)
#
# Vault accepts build metadata in `plugin register -version` and keeps it (it refuses only
# "builtin", its own), so `vault plugin info` tells two development builds apart and never
# takes one for a release. A released version is stamped only by make release VERSION=vX.Y.Z,
# on the commit tagged vX.Y.Z (README, "Releasing").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

base=$(sed -n 's/^var Version = "\([^"]*\)".*/\1/p' backend.go)
if ! [[ $base =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)-dev$ ]]; then
  echo "version.sh: backend.go's var Version is \"$base\", want the next release with -dev, such as v0.2.0-dev" >&2
  exit 2
fi
if [ "$(git rev-parse --show-toplevel 2>/dev/null)" != "$root" ]; then
  echo "$base" # a source tree outside git: no commit to name
  exit 0
fi
meta=$(git rev-parse --short HEAD)
if [ -n "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]; then
  meta+=.dirty
fi
# After a release the base must move on, or development builds sort below the release.
last=$(git describe --tags --abbrev=0 --match 'v[0-9]*.[0-9]*.[0-9]*' 2>/dev/null || true)
if [ -n "$last" ] && [ "$(git rev-parse "$last^{commit}")" != "$(git rev-parse HEAD)" ]; then
  core=${base%-dev} lastcore=${last%%[-+]*}
  if [ "$(printf '%s\n%s\n' "${lastcore#v}" "${core#v}" | sort -V | tail -1)" != "${core#v}" ] || [ "$lastcore" = "$core" ]; then
    echo "version.sh: warning: backend.go's $base is not above the release $last: bump it to the next release" >&2
  fi
fi
echo "$base+$meta"
