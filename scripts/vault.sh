#!/usr/bin/env bash
# Prints the path of a `vault` binary for make dev, the acceptance suite and make compat.
#
#   1. $VAULT_BIN, if set;
#   2. with no VAULT_VERSION asked for: a `vault` on PATH at the oldest version make compat
#      tests (MIN_VERSION) or later;
#   3. otherwise Vault v$VAULT_VERSION (default: DEFAULT_VERSION, the one `make test` uses)
#      built from the Go module proxy by its own tools module, tools/vault/v$VAULT_VERSION
#      (its own go.mod, so Vault's dependency graph never touches the plugin's), into the
#      git-ignored .tools/bin/, once, and reused after.
#
# Build facts (2 cores). Each tools module's go.mod says what that version needed, or why it
# does not build: a Vault release's go.mod replaces vault/sdk and vault/api with its own tree,
# which the module proxy does not serve, so a release builds only where published sdk and api
# tags match what it uses.
#   - v1.21.0 builds with what it declares; v1.19.5 with sdk v0.17.0 (its declared v0.15.2
#     lacks plugin tiers); v1.18.1 with api v1.16.0.
#   - v1.14.10, v1.18.5 and v1.20.4 build against no published sdk tag (their go.mod says
#     why, and which neighbouring releases were tried or read).
#   - GONOSUMDB covers one snowflake plugin whose checksum is not in the public database.
#   - A first build takes 10-20 minutes; later ones reuse Go's build cache (1-5 minutes).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
DEFAULT_VERSION=1.19.5
MIN_VERSION=1.18.1 # the oldest version make compat runs (the README's version table)

if [ -n "${VAULT_BIN:-}" ]; then
  echo "$VAULT_BIN"
  exit 0
fi
if [ -z "${VAULT_VERSION:-}" ] && command -v vault >/dev/null 2>&1; then
  have=$(vault version 2>/dev/null | sed -n 's/^Vault v\([0-9]*\.[0-9]*\.[0-9]*\).*/\1/p' || true)
  if [ -n "$have" ] && [ "$(printf '%s\n%s\n' "$MIN_VERSION" "$have" | sort -V | head -1)" = "$MIN_VERSION" ]; then
    command -v vault
    exit 0
  fi
fi
VAULT_VERSION=${VAULT_VERSION:-$DEFAULT_VERSION}
module="$root/tools/vault/v$VAULT_VERSION"
if [ ! -f "$module/go.mod" ]; then
  echo "no tools module for Vault v$VAULT_VERSION: tools/vault/ has $(cd "$root/tools/vault" && echo v*)" >&2
  exit 2
fi

bin="$root/.tools/bin/vault-$VAULT_VERSION"
# A version that does not compile fails the same way until its tools module or Go changes:
# its compiler errors are kept beside the binaries, under that checksum, and shown again. Any
# other failure (network, disk, a killed compiler) is not kept.
failed="$bin.build-failed"
sum=$({ cat "$module/go.mod" "$module/go.sum"; go version; } | sha256sum | cut -d' ' -f1)
if [ ! -x "$bin" ] && [ -f "$failed" ] && [ "$(head -1 "$failed")" = "$sum" ]; then
  echo "Vault v$VAULT_VERSION does not build (kept from the last try; delete $failed to try again):" >&2
  tail -n +2 "$failed" >&2
  exit 1
fi
if [ ! -x "$bin" ]; then
  echo "Building Vault v$VAULT_VERSION from the Go module proxy into .tools/bin (once; 10-20 minutes on 2 cores)..." >&2
  mkdir -p "$root/.tools/bin"
  log="$bin.build-log"
  if ! (
    cd "$module"
    GONOSUMDB=github.com/hashicorp/vault-plugin-database-snowflake \
      go build -o "$bin.partial" github.com/hashicorp/vault
  ) >"$log" 2>&1; then
    if grep -qE '\.go:[0-9]+:[0-9]+: ' "$log"; then
      { echo "$sum"; grep -v '^go: downloading' "$log"; } >"$failed"
    fi
    grep -v '^go: downloading' "$log" >&2
    exit 1
  fi
  cat "$log" >&2
  rm -f "$log" "$failed"
  mv "$bin.partial" "$bin"
fi
if [ "$VAULT_VERSION" = "$DEFAULT_VERSION" ]; then
  ln -sf "vault-$VAULT_VERSION" "$root/.tools/bin/vault" # so `PATH=.tools/bin:$PATH vault` works
fi
echo "$bin"
