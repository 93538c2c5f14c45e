#!/usr/bin/env bash
# make release VERSION=vX.Y.Z: the release artifacts in dist/, built the way HashiCorp ships
# plugins: vault-plugin-secrets-apitokens_<X.Y.Z>_<os>_<arch>.zip per platform, each holding
# the plugin binary alone; SHA256SUMS over the zips; PLUGIN_SHA256SUMS with the sha256 of each
# binary, the number `vault plugin register -sha256` needs (also printed).
#
# Reproducible: CGO_ENABLED=0, -trimpath, -buildvcs=false, GOFLAGS cleared and the
# architecture levels pinned, so the same source, version and Go toolchain give byte-identical
# binaries wherever the tree is checked out. The zip entries carry SOURCE_DATE_EPOCH (default:
# the HEAD commit's time; 1980-01-01 outside git), so the zips are byte-identical too.
#
#   VERSION    required, vX.Y.Z[-pre][+build]; stamped into the binary (Vault's running version).
#              Never a development version (a pre-release with "dev", what a checkout builds
#              as: scripts/version.sh). In a git checkout, HEAD must be the commit of the
#              annotated tag VERSION (README, "Releasing"); a tree outside git is built as is.
#   PLATFORMS  default: linux, darwin, freebsd on amd64 and arm64, and windows/amd64
#   DIST       default: dist/ in the repository (git-ignored)
#   GO         default: go
# Needs only Go: scripts/distzip writes the zips and sums.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

PLUGIN=vault-plugin-secrets-apitokens
PKG=github.com/apitokens/vault-plugin-secrets-apitokens
GO=${GO:-go}
DIST=${DIST:-$root/dist}
PLATFORMS=${PLATFORMS:-linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 freebsd/amd64 freebsd/arm64 windows/amd64}
VERSION=${VERSION:-}
if ! [[ $VERSION =~ ^v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$ ]]; then
  echo "release: VERSION=${VERSION:-<unset>}: want a semantic version with a leading v, such as VERSION=v0.1.0" >&2
  exit 2
fi
pre=${BASH_REMATCH[4]#-} # the pre-release identifiers, "rc.1", or empty
if [[ .$pre. == *.dev.* ]]; then
  echo "release: VERSION=$VERSION is a development version (what a checkout builds as); a release is vX.Y.Z (or vX.Y.Z-rc.N) on its tag's commit" >&2
  exit 2
fi

commit=unknown
if [ "$(git rev-parse --show-toplevel 2>/dev/null)" = "$root" ]; then
  commit=$(git rev-parse --short=12 HEAD)
  # A release is made from the commit its annotated tag names, so anyone can rebuild it from
  # the tag: git tag -a vX.Y.Z -m "..." <commit>, check it out, then make release on it.
  case $(git cat-file -t "refs/tags/$VERSION" 2>/dev/null || true) in
    tag) ;;
    "") echo "release: there is no tag $VERSION: tag the commit first (git tag -a $VERSION -m \"...\"; README, \"Releasing\")" >&2
      exit 2 ;;
    *) echo "release: the tag $VERSION is not annotated (git tag -a): it records no tagger, date or message" >&2
      exit 2 ;;
  esac
  if [ "$(git rev-parse "refs/tags/$VERSION^{commit}")" != "$(git rev-parse HEAD)" ]; then
    echo "release: the tag $VERSION names commit $(git rev-parse --short=12 "refs/tags/$VERSION^{commit}"), not HEAD ($commit): check it out (git checkout $VERSION) and run make release there" >&2
    exit 2
  fi
  : "${SOURCE_DATE_EPOCH:=$(git log -1 --format=%ct HEAD)}"
  if [ -n "$(git status --porcelain --untracked-files=no)" ]; then
    echo "release: warning: uncommitted changes: these binaries are not those of commit $commit" >&2
  fi
fi
: "${SOURCE_DATE_EPOCH:=315532800}" # 1980-01-01T00:00:00Z, the earliest time a zip holds

build=$(mktemp -d "${TMPDIR:-/tmp}/apitokens-release.XXXXXX")
trap 'rm -rf "$build"' EXIT
start=$(date +%s)
echo "==> $PLUGIN $VERSION ($("$GO" env GOVERSION), commit $commit) for: $PLATFORMS"
for p in $PLATFORMS; do
  os=${p%/*} arch=${p#*/} ext=
  [ "$os" = windows ] && ext=.exe
  env CGO_ENABLED=0 GOOS="$os" GOARCH="$arch" GOAMD64=v1 GOARM64=v8.0 GOFLAGS= GOEXPERIMENT= \
    "$GO" build -trimpath -buildvcs=false -ldflags "-X $PKG.Version=$VERSION" \
    -o "$build/${os}_${arch}/$PLUGIN$ext" "./cmd/$PLUGIN"
done

# Only this release's artifacts in DIST: a stale zip of another version would be uploaded too.
mkdir -p "$DIST"
rm -f "$DIST/${PLUGIN}_"*.zip "$DIST/SHA256SUMS" "$DIST/PLUGIN_SHA256SUMS"
env -u GOOS -u GOARCH GOFLAGS= "$GO" run ./scripts/distzip -name "$PLUGIN" -version "$VERSION" \
  -mtime "$SOURCE_DATE_EPOCH" -dist "$DIST" "$build"
echo "==> $DIST: $(ls "$DIST" | wc -l) files in $(($(date +%s) - start))s. Register with the binary's sha256 and -version=$VERSION."
