#!/usr/bin/env bash
# make compat: the version matrix. For each Vault version (COMPAT_VERSIONS, default every
# tools module under tools/vault/), build it once with scripts/vault.sh, run the acceptance
# tests that matter for compatibility against it, and print one table: for each version,
# whether it built, how many of the tests passed, and each failure's first line. Logs are
# kept in .tools/compat/. Exits non-zero when a version failed to build that should, or any
# test failed.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# The compatibility subset: register by sha256 and version, enable, info (RegisterEnableInfo);
# config CRUD through the API and the CLI; config and creds for each provider; rotate-root;
# plugin reload and upgrade to another plugin version; Agent rendering; scheduled rotation
# with the metrics scraped through the HTTP API; Prometheus scraping through Vault; two
# mounts in one multiplexed process that exits with Vault; configs kept across a restart on
# file and raft storage.
COMPAT_TESTS=${COMPAT_TESTS:-TestRegisterEnableInfoCLI|TestConfigCRUDThroughAPIAndCLI|TestCredsEveryProviderAndGrant|TestRotateRootInVault|TestUpgradePluginVersion|TestVaultAgentRendersAndRefreshes|TestScheduledRotationInVault|TestPrometheusScrapesThroughVault|TestPluginExitsWhenVaultIsKilled|TestRestartKeepsConfigs}
if [ -z "${COMPAT_VERSIONS:-}" ]; then
  COMPAT_VERSIONS=$(cd tools/vault && ls -d v*/ | tr -d /v | sort -V | tr '\n' ' ')
fi
# Ctrl-C stops the matrix (go test exits 1 on SIGINT, which would otherwise run on).
trap 'echo "compat: interrupted" >&2; exit 130' INT TERM
# Each version's binary comes from its tools module, never from a VAULT_BIN of the caller's.
unset VAULT_BIN
logs="$root/.tools/compat"
mkdir -p "$logs"
prom=$(scripts/prometheus.sh) || { echo "compat: could not find or install Prometheus" >&2; exit 1; }
ntests=$(tr '|' '\n' <<<"$COMPAT_TESTS" | wc -l)

rows=()
status=0
for v in $COMPAT_VERSIONS; do
  echo "== Vault v$v" >&2
  build="$logs/build-$v.log"
  if [ ! -f "tools/vault/v$v/go.mod" ]; then
    rows+=("| $v | no tools module (tools/vault/v$v/) | — |")
    status=1
    continue
  fi
  # A tools module whose go.mod has the line "// compat: does not build" documents why; its
  # failure is expected and fails nothing (its building would be news, and is said).
  expected=$(grep -c '^// compat: does not build' "tools/vault/v$v/go.mod")
  if ! bin=$(VAULT_VERSION=$v scripts/vault.sh 2>"$build"); then
    # The first compile error names the package and the API it lacks.
    why=$(grep -m1 -E '\.go:[0-9]+:[0-9]+: ' "$build" | sed 's#^.*/pkg/mod/github.com/hashicorp/##' || tail -1 "$build")
    if [ "${expected:-0}" -gt 0 ]; then
      rows+=("| $v | does not build (expected: tools/vault/v$v/go.mod says why) | $why |")
    else
      rows+=("| $v | does not build | $why |")
      status=1
    fi
    continue
  fi
  if [ "${expected:-0}" -gt 0 ]; then
    echo "compat: Vault v$v built, though tools/vault/v$v/go.mod says it does not" >&2
    status=1
  fi
  if ! "$bin" version 2>/dev/null | grep -qE "^Vault v${v//./\\.}([ ,]|$)"; then
    rows+=("| $v | $bin is not Vault v$v: $("$bin" version 2>&1 | head -1) | — |")
    status=1
    continue
  fi
  log="$logs/test-$v.log"
  start=$(date +%s)
  VAULT_BIN=$bin PROMETHEUS_DIR=$prom go test -tags acceptance -count=1 -timeout 30m -v \
    -run "^($COMPAT_TESTS)\$" ./acceptance/ >"$log" 2>&1
  took=$(($(date +%s) - start))
  passed=$(grep -cE '^--- PASS: Test' "$log")
  failed=$(grep -E '^--- FAIL: Test' "$log" | awk '{print $3}')
  ran=$((passed + $(grep -cE '^--- FAIL: Test' "$log")))
  notes=""
  for t in $failed; do
    # The last file:line the failed test or its subtests logged (t.Fatal ends a test), with
    # the table's separator escaped.
    last=$(awk -v t="$t" '/^=== (RUN|CONT|NAME|PAUSE) / {cur = $NF}
      (cur == t || index(cur, t "/") == 1) && /_test\.go:[0-9]+:/ {line = $0; sub(/^ +/, "", line)}
      END {print line}' "$log")
    notes+="$t: ${last:-see .tools/compat/test-$v.log}; "
  done
  notes=${notes//|/\\|}
  if [ "$ran" -ne "$ntests" ] || [ -n "$failed" ]; then
    status=1
  fi
  [ "$ran" -ne "$ntests" ] && notes+="ran $ran of $ntests tests ($(grep -m1 -E '^(FAIL|panic|ok)' "$log" | tr '\t' ' ')); "
  rows+=("| $v | $passed/$ntests passed (${took}s) | ${notes:-nothing found} |")
done

echo
echo "| Vault | compatibility tests | what does not work |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "(tests: $(tr '|' ' ' <<<"$COMPAT_TESTS"); logs in .tools/compat/)"
exit $status
