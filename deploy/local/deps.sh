#!/usr/bin/env bash
# deploy/local/deps.sh: installs the Debian packages Switchyard's `make run` and
# `make test` need, only those missing. Runs non-interactively; needs root only
# when something is missing.
#
# Switchyard runs its own ovsdb-server/ovs-vswitchd per simulated host and its
# own PostgreSQL cluster (deploy/local/postgres.sh), so the system services that
# these packages may start on installation are stopped again afterwards (only
# for packages this script installed; services already there are left alone).
#
# Go is not installed here: it is expected in /usr/local/go (see README.md).
set -euo pipefail

# podman, runc, containernetworking-plugins and busybox-static: the CNI
# plugin's end-to-end tests (a real runtime on the CNI backend, runc because
# crun refuses hybrid cgroup hierarchies, an image built offline).
# chromium: the web console's browser tests (tests/console, headless).
PACKAGES=(postgresql openvswitch-switch iproute2 iputils-ping iperf3 ethtool tcpdump curl openssl nftables
	podman runc containernetworking-plugins busybox-static chromium)
# Services those packages may start, by package.
declare -A SERVICES=(
	[postgresql]=postgresql
	[openvswitch-switch]=openvswitch-switch
	[iperf3]=iperf3
)

say() { echo "deps.sh: $*" >&2; }

installed() {
	[ "$(dpkg-query -W -f='${db:Status-Status}' "$1" 2>/dev/null || true)" = installed ]
}

# stop_service stops a system service if it is running, through systemd when
# it is the init system, else through the SysV script. It never kills by name.
stop_service() {
	local svc="$1"
	if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
		if systemctl is-active --quiet "$svc" 2>/dev/null; then
			say "stopping system service $svc (Switchyard runs its own)"
			systemctl stop "$svc" || say "warning: could not stop $svc"
			systemctl disable --quiet "$svc" 2>/dev/null || true
		fi
	elif [ -x "/etc/init.d/$svc" ] && command -v service >/dev/null; then
		if service "$svc" status >/dev/null 2>&1; then
			say "stopping system service $svc (Switchyard runs its own)"
			service "$svc" stop >/dev/null 2>&1 || say "warning: could not stop $svc"
		fi
	fi
}

missing=()
for p in "${PACKAGES[@]}"; do
	installed "$p" || missing+=("$p")
done

if [ "${#missing[@]}" -gt 0 ]; then
	[ "$(id -u)" -eq 0 ] || { say "missing packages: ${missing[*]}; run this script as root"; exit 1; }
	say "installing: ${missing[*]}"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
	for p in "${missing[@]}"; do
		[ -z "${SERVICES[$p]:-}" ] || stop_service "${SERVICES[$p]}"
	done
fi

if ! command -v go >/dev/null; then
	if [ -x /usr/local/go/bin/go ]; then
		say "note: go is not on PATH; add /usr/local/go/bin (the Makefile does)"
	else
		say "warning: Go not found (expected /usr/local/go); install Go $(sed -n 's/^go //p' "$(dirname "$0")/../../go.mod") or newer"
	fi
fi
