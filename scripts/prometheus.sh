#!/usr/bin/env bash
# Prints the directory holding `prometheus` and `promtool`, for make prom-rules and the
# acceptance suite (PROMETHEUS_DIR); nothing else goes to stdout.
#
#   1. $PROMETHEUS_DIR, if set (it must hold both; an error otherwise);
#   2. the directory of a `promtool` on PATH, or /usr/bin, holding both;
#   3. otherwise Debian's package, installed once: `apt-get install prometheus` (2.42 on
#      Debian 12), and only if that fails `apt-get update` and a second try. Needs root, or a
#      sudo that asks no password.
#
# The package's postinst starts its service (the init script when systemd is not running,
# the systemd unit when it is): a Prometheus on port 9090, scraping itself, that would stay
# up. While it installs, a policy-rc.d that denies every start is in place (invoke-rc.d and
# deb-systemd-invoke both obey it; an existing policy-rc.d is put back afterwards), and the
# service is then disabled at boot, so the package leaves no Prometheus running, now or after
# a reboot; `systemctl enable --now prometheus` (or `update-rc.d prometheus enable`) undoes
# that. Recommends (prometheus-node-exporter, another service) are not installed.
set -euo pipefail

has_both() { [ -x "$1/prometheus" ] && [ -x "$1/promtool" ]; }

if [ -n "${PROMETHEUS_DIR:-}" ]; then
  if ! has_both "$PROMETHEUS_DIR"; then
    echo "PROMETHEUS_DIR=$PROMETHEUS_DIR does not hold both prometheus and promtool" >&2
    exit 2
  fi
  echo "$PROMETHEUS_DIR"
  exit 0
fi
for dir in "$(dirname "$(command -v promtool 2>/dev/null || echo /nonexistent/promtool)")" /usr/bin; do
  if has_both "$dir"; then
    echo "$dir"
    exit 0
  fi
done

if ! command -v apt-get >/dev/null 2>&1; then
  echo "prometheus and promtool not found, and no apt-get to install them: install Prometheus 2.x and set PROMETHEUS_DIR" >&2
  exit 1
fi
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
    echo "installing Debian's prometheus package needs root: run as root, or install it and set PROMETHEUS_DIR" >&2
    exit 1
  fi
  sudo=(sudo -n)
fi

echo "Installing Debian's prometheus package (once)..." >&2
policy=/usr/sbin/policy-rc.d
saved="" # where an existing policy-rc.d waits meanwhile
restore() {
  if [ -z "$saved" ]; then
    "${sudo[@]}" rm -f "$policy"
  elif [ -e "$saved" ]; then
    "${sudo[@]}" mv -f "$saved" "$policy"
  fi
}
trap restore EXIT
trap 'exit 130' INT TERM HUP
if [ -e "$policy" ]; then
  saved="$policy.apitokens-saved"
  "${sudo[@]}" mv -f "$policy" "$saved"
fi
printf '#!/bin/sh\n# scripts/prometheus.sh: no service starts while it installs prometheus.\nexit 101\n' |
  "${sudo[@]}" tee "$policy" >/dev/null
"${sudo[@]}" chmod 0755 "$policy"

apt_install() {
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends \
    -o DPkg::Lock::Timeout=300 prometheus >&2
}
if ! apt_install; then
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -q -o DPkg::Lock::Timeout=300 >&2
  apt_install
fi

# Not at boot either. Both commands work without a running systemd.
"${sudo[@]}" update-rc.d prometheus disable >/dev/null 2>&1 || true
if command -v deb-systemd-helper >/dev/null 2>&1; then
  "${sudo[@]}" deb-systemd-helper disable prometheus.service >/dev/null 2>&1 || true
fi
# Had something started it regardless, stop it: the service's own pid file, and its unit.
pidfile=/run/prometheus/prometheus.pid
if [ -f "$pidfile" ]; then
  "${sudo[@]}" start-stop-daemon --stop --quiet --oknodo --retry=TERM/30/KILL/5 \
    --exec /usr/bin/prometheus --pidfile "$pidfile" --remove-pidfile >&2 || true
fi
if [ -d /run/systemd/system ]; then
  "${sudo[@]}" systemctl stop prometheus.service >/dev/null 2>&1 || true
fi

if ! has_both /usr/bin; then
  echo "the prometheus package is installed but /usr/bin lacks prometheus or promtool" >&2
  exit 1
fi
echo /usr/bin
