#!/usr/bin/env bash
# Prints the path of a `vault` binary for make dev and the acceptance suite.
#
#   1. $VAULT_BIN, if set;
#   2. a `vault` on PATH at version 1.15 or later;
#   3. otherwise Vault v$VAULT_VERSION built from the Go module proxy by the separate tools
#      module tools/vault (its own go.mod, so Vault's dependency graph never touches the
#      plugin's) into the git-ignored .tools/bin/, once, and reused after.
#
# Build facts (2 cores): v1.19.5 builds when the tools module replaces vault/sdk with v0.17.0
# (its declared v0.15.2 lacks plugin tiers) and GONOSUMDB covers one snowflake plugin whose
# checksum is not in the public database; the first build takes 10-15 minutes, later ones
# reuse Go's build cache. v1.20.3 and v1.21.4 do not build against any published sdk tag.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
VAULT_VERSION=1.19.5

if [ -n "${VAULT_BIN:-}" ]; then
  echo "$VAULT_BIN"
  exit 0
fi
if command -v vault >/dev/null 2>&1; then
  read -r major minor < <(vault version | sed -n 's/^Vault v\([0-9]*\)\.\([0-9]*\)\..*/\1 \2/p')
  if [ "${major:-0}" -gt 1 ] || { [ "${major:-0}" -eq 1 ] && [ "${minor:-0}" -ge 15 ]; }; then
    command -v vault
    exit 0
  fi
fi

bin="$root/.tools/bin/vault-$VAULT_VERSION"
if [ ! -x "$bin" ]; then
  echo "Building Vault v$VAULT_VERSION from the Go module proxy into .tools/bin (once; 10-15 minutes on 2 cores)..." >&2
  mkdir -p "$root/.tools/bin"
  (
    cd "$root/tools/vault"
    GONOSUMDB=github.com/hashicorp/vault-plugin-database-snowflake \
      go build -o "$bin.partial" github.com/hashicorp/vault
  ) >&2
  mv "$bin.partial" "$bin"
fi
ln -sf "vault-$VAULT_VERSION" "$root/.tools/bin/vault" # so `PATH=.tools/bin:$PATH vault` works
echo "$bin"
