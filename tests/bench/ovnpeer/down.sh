#!/bin/bash
# down.sh: stop every process of the run in $OVNPEER_RUN (by its pid files
# only), delete the namespaces the run created (its list, and any left with
# its own ovp<ID>- prefix), then the run directory. Safe to run repeatedly
# and on a half-made run.
set -uo pipefail
[ -n "${OVNPEER_RUN:-}" ] && [ -d "$OVNPEER_RUN" ] || exit 0
. "$(dirname "$0")/lib.sh"
set +e
shopt -s nullglob
for d in ovn-controller ovs-vswitchd ovsdb-server; do kill_pidfiles "$RUN"/h*/$d.pid; done
kill_pidfiles "$CDIR/ovn-northd.pid"
kill_pidfiles "$CDIR/ovnsb_db.pid" "$CDIR/ovnnb_db.pid"
if [ -f "$RUN/netns.list" ]; then
  for ns in $(tac "$RUN/netns.list"); do ip netns del "$ns" 2>/dev/null; done
fi
if [ -s "$RUN/id" ]; then
  id=$(cat "$RUN/id")
  for ns in $(ip netns list | awk '{print $1}' | grep -E "^ovp$id-"); do ip netns del "$ns" 2>/dev/null; done
fi
rm -rf "$RUN"
log "down: processes stopped, namespaces removed"
