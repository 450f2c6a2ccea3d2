#!/bin/bash
# fill.sh K: K containers c1..cK spread round-robin over the hosts of the run
# (like Switchyard's bench fill): namespaces and veths, OVS ports with their
# iface-id (one transaction per host), then the logical switch ports in NB
# transactions of FILL_CHUNK (default 100) ports, each with --wait=hv, so the
# controllers are never handed 1,000 ports at once (that made them miss their
# 8 s OpenFlow probes in an earlier run). Returns when every port is up.
set -euo pipefail
. "$(dirname "$0")/lib.sh"
K=${1:?usage: fill.sh K}
CHUNK=${FILL_CHUNK:-100}
T0=$(now)
plumb $(seq 1 "$K")
attach $(seq 1 "$K")
T1=$(now)
for ((a = 1; a <= K; a += CHUNK)); do
  b=$((a + CHUNK - 1)); [ "$b" -le "$K" ] || b=$K
  mapfile -t args < <(lsp_args $(seq "$a" "$b"))
  nbctl --wait=hv "${args[@]:1}"
done
mapfile -t args < <(for j in $(seq 1 "$K"); do printf -- '--\nwait-until\nLogical_Switch_Port\nc%s\nup=true\n' "$j"; done)
nbctl "${args[@]:1}"
echo "$K" > "$RUN/filled"
log "fill: $K ports up in $(elapsed "$T0" "$(now)") s (plumbing $(elapsed "$T0" "$T1") s)"
