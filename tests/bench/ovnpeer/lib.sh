# Shared helpers of the OVN 23.03 peer baseline (source it, do not run it).
#
# One run lives in the directory $OVNPEER_RUN (required, absolute, made by
# up.sh): pid files, OVSDB files, sockets, logs, and the list of network
# namespaces the run created. Every namespace is named ovp<ID>-<what>, where
# <ID> is a random id kept in $OVNPEER_RUN/id, so two runs (or a Switchyard
# lab, whose namespaces are sy-<id>-*) never collide. down.sh stops exactly
# the processes named in the run's pid files and deletes exactly the
# namespaces in its list; nothing here touches anything else.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
RUN=${OVNPEER_RUN:?set OVNPEER_RUN to the run directory (absolute path)}
case "$RUN" in /*) ;; *) echo "OVNPEER_RUN must be absolute" >&2; exit 2 ;; esac
CDIR=$RUN/central
UL_NET=192.168.200           # underlay, inside this run's namespaces only
C_IP=$UL_NET.250
GW_IP=10.244.0.1
export OVN_NB_DB=unix:$CDIR/ovnnb_db.sock
export OVN_SB_DB=unix:$CDIR/ovnsb_db.sock
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

log() { echo "[ovnpeer $(date +%T)] $*" >&2; }
die() { log "FATAL: $*"; exit 1; }
now() { echo "$EPOCHREALTIME"; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN{printf "%.3f", b-a}'; }

run_id() { cat "$RUN/id" 2>/dev/null || die "no $RUN/id: run up.sh first"; }
ns_of() { echo "ovp$(run_id)-$1"; }          # ns_of h3 -> ovp1a2b-h3
nhosts() { cat "$RUN/nhosts" 2>/dev/null || die "no $RUN/nhosts: run up.sh first"; }

nbctl() { ovn-nbctl --timeout="${NBCTL_TIMEOUT:-300}" "$@"; }
sbctl() { ovn-sbctl --timeout=60 "$@"; }
# ovs-vsctl against host $1's own OVSDB
hvsctl() { local h=$1; shift; ovs-vsctl --db="unix:$RUN/h$h/db.sock" --timeout=120 "$@"; }

# container j (1-based) is on host ((j-1) mod N)+1, like Switchyard's bench
host_of() { echo $(( ($1 - 1) % $(nhosts) + 1 )); }
ip_of() { local n=$(( $1 + 1 )); echo "10.244.$((n / 256)).$((n % 256))"; }
mac_of() { local n=$(( $1 + 1 )); printf '0a:58:0a:f4:%02x:%02x' $((n / 256)) $((n % 256)); }

add_netns() { echo "$1" >> "$RUN/netns.list"; ip netns add "$1"; }

# The programs this harness starts. A pid from a pid file is signalled only
# while /proc/PID/comm is still one of them (guards against pid reuse).
OUR_COMMS='ovsdb-server|ovs-vswitchd|ovn-controller|ovn-northd'
# kill_pidfiles FILE...: TERM every live pid, wait up to 10 s, KILL the rest.
kill_pidfiles() {
  local f pid i alive pids=()
  for f in "$@"; do
    [ -s "$f" ] || continue
    pid=$(cat "$f")
    if [ -d "/proc/$pid" ] && grep -qxE "$OUR_COMMS" "/proc/$pid/comm" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null && pids+=("$pid")
    fi
  done
  [ ${#pids[@]} -gt 0 ] || return 0
  for i in $(seq 1 100); do
    alive=0
    for pid in "${pids[@]}"; do [ -d "/proc/$pid" ] && alive=1; done
    [ "$alive" = 1 ] || return 0
    sleep 0.1
  done
  for pid in "${pids[@]}"; do
    [ -d "/proc/$pid" ] && grep -qxE "$OUR_COMMS" "/proc/$pid/comm" 2>/dev/null && kill -KILL "$pid" 2>/dev/null
  done
  return 0
}

# --- containers ----------------------------------------------------------------
# Container j: netns ovp<ID>-c<j> with eth0 (MAC mac_of j, IP ip_of j /16), the
# veth's other end vc<j> in its host's netns. No traffic runs in this benchmark,
# so the containers get no sysctl or offload tuning.
# plumb J...: the namespaces and veths (not yet on OVS), few processes per container.
plumb() {
  local j h ns batch hostbatch=()
  [ $# -gt 0 ] || return 0
  batch=$(mktemp "$RUN/plumb.XXXXXX")
  for j in "$@"; do
    ns=$(ns_of "c$j"); h=$(host_of "$j")
    echo "$ns" >> "$RUN/netns.list"
    echo "netns add $ns" >> "$batch"
    echo "link add vc$j netns $(ns_of "h$h") type veth peer name eth0 address $(mac_of "$j") mtu 1400 netns $ns" >> "$batch"
  done
  ip -batch "$batch"
  for j in "$@"; do
    printf 'link set lo up\nlink set eth0 up\naddr add %s/16 dev eth0\nroute add default via %s\n' \
      "$(ip_of "$j")" "$GW_IP" | ip -n "$(ns_of "c$j")" -batch -
    h=$(host_of "$j"); hostbatch[$h]+="link set vc$j up"$'\n'
  done
  for h in "${!hostbatch[@]}"; do printf '%s' "${hostbatch[$h]}" | ip -n "$(ns_of "h$h")" -batch -; done
  rm -f "$batch"
}
# attach J...: what a CNI does, one OVSDB transaction per host: the OVS port with
# external_ids:iface-id=c<j> (the logical switch port's name).
attach() {
  local j h args=()
  declare -A per
  for j in "$@"; do
    h=$(host_of "$j")
    per[$h]+=" -- add-port br-int vc$j -- set interface vc$j external_ids:iface-id=c$j"
  done
  for h in "${!per[@]}"; do
    # shellcheck disable=SC2086
    read -r -a args <<< "${per[$h]}"
    hvsctl "$h" "${args[@]}"
  done
}
# lsp_args J...: ovn-nbctl commands creating LSP c<j> with addresses and port
# security (what a CNI/Kubernetes integration writes), on stdout, one per line.
lsp_args() {
  local j a
  for j in "$@"; do
    a="$(mac_of "$j") $(ip_of "$j")"
    printf -- '--\nlsp-add\nls0\nc%s\n--\nlsp-set-addresses\nc%s\n%s\n--\nlsp-set-port-security\nc%s\n%s\n' "$j" "$j" "$a" "$j" "$a"
  done
}
