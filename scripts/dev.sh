#!/usr/bin/env bash
# make dev: a Vault dev server with the plugin registered (by sha256 and version), enabled at
# apitokens/, and one config per provider and grant pointing at a local provider simulator.
# Prints a real `vault read` of each, then the lines to use it yourself. Stays up until
# Ctrl-C, then stops everything it started. Needs only Go (Vault is built once if missing).
# The plugin is registered as this checkout's development version (scripts/version.sh), or
# VERSION if set.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

VERSION=${VERSION:-$(scripts/version.sh)} # this checkout's development version: v0.2.0-dev+<commit>
PORT=${VAULT_PORT:-8200}
PLUGIN=vault-plugin-secrets-apitokens
work="$root/.dev"
pids=()

cleanup() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "Stopped Vault and the simulator."
}
trap cleanup EXIT INT TERM

vault_bin=$(scripts/vault.sh)
rm -rf "$work" && mkdir -p "$work/plugins"
echo "==> Building the plugin $VERSION and the simulator"
go build -ldflags "-X github.com/apitokens/vault-plugin-secrets-apitokens.Version=$VERSION" \
  -o "$work/plugins/$PLUGIN" ./cmd/$PLUGIN
go build -o "$work/apitokens-simulator" ./cmd/apitokens-simulator

echo "==> Starting the provider simulator"
"$work/apitokens-simulator" -addr 127.0.0.1:0 -env-file "$work/sim.env" >"$work/simulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 50); do [ -s "$work/sim.env" ] && break; sleep 0.1; done
[ -s "$work/sim.env" ] || { cat "$work/simulator.log"; echo "simulator did not start" >&2; exit 1; }
# shellcheck disable=SC1091
. "$work/sim.env"

echo "==> Starting a Vault dev server on 127.0.0.1:$PORT ($("$vault_bin" version))"
cat >"$work/vault.hcl" <<EOF
plugin_directory = "$work/plugins"
EOF
"$vault_bin" server -dev -dev-root-token-id=root -dev-listen-address="127.0.0.1:$PORT" \
  -config="$work/vault.hcl" >"$work/vault.log" 2>&1 &
pids+=($!)
export VAULT_ADDR="http://127.0.0.1:$PORT" VAULT_TOKEN=root
for _ in $(seq 100); do "$vault_bin" status >/dev/null 2>&1 && break; sleep 0.2; done
"$vault_bin" status >/dev/null || { tail -20 "$work/vault.log"; echo "Vault did not start (port $PORT taken? set VAULT_PORT)" >&2; exit 1; }

v() { echo "\$ vault $*"; "$vault_bin" "$@"; }
sha=$(sha256sum "$work/plugins/$PLUGIN" | cut -d' ' -f1)
v plugin register -sha256="$sha" -version="$VERSION" secret "$PLUGIN"
v secrets enable -path=apitokens -plugin-version="$VERSION" "$PLUGIN"

echo "==> Writing one config per provider and grant (credentials from the simulator)"
"$vault_bin" write apitokens/config/offblocks provider=offblocks base_url="$OFFBLOCKS_BASE_URL" \
  api_key="$OFFBLOCKS_API_KEY" api_secret="$OFFBLOCKS_API_SECRET"
"$vault_bin" write apitokens/config/bloq provider=bloq base_url="$BLOQ_BASE_URL" \
  client_id="$BLOQ_CLIENT_ID" client_secret="$BLOQ_CLIENT_SECRET" \
  username="$BLOQ_USERNAME" password="$BLOQ_PASSWORD"
"$vault_bin" write apitokens/config/bloq-account provider=bloq base_url="$BLOQ_BASE_URL" \
  username="$BLOQ_USERNAME" password="$BLOQ_PASSWORD"
"$vault_bin" write apitokens/config/opsnow provider=opsnow base_url="$OPSNOW_BASE_URL" \
  api_key="$OPSNOW_API_KEY"

echo
for name in offblocks bloq bloq-account opsnow; do
  v read "apitokens/creds/$name"
  echo
done
v read apitokens/config/bloq
echo
cat <<EOF
==> Ready. Vault and the simulator run until you press Ctrl-C. In another shell:

  export VAULT_ADDR='$VAULT_ADDR'
  export VAULT_TOKEN='root'
  export PATH="$(dirname "$vault_bin"):\$PATH"   # the Vault this used

  vault read apitokens/creds/offblocks
  vault write -f apitokens/rotate-root/offblocks      # new OffBlocks pair; old tokens die
  vault write -f apitokens/rotate-root/bloq           # new Bloq client key; old key deleted
  vault list apitokens/config
  vault path-help apitokens/creds/opsnow
  curl -s -X POST -H "Authorization: Bearer \$(vault read -field=token apitokens/creds/opsnow)" $SIM_URL/_sim/validate

Logs: $work/vault.log, $work/simulator.log
EOF
wait "${pids[0]}"
