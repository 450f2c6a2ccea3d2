#!/bin/bash
# compare-ovn.sh HOSTS PORTS: one-port convergence of Switchyard and of OVN
# 23.03 measured in one run on this machine, one after the other, on the same
# lab shape (HOSTS network-namespace hosts with userspace OVS, PORTS containers
# spread evenly, Geneve), printed side by side with the ratio.
#
#   1. Switchyard: `go test -bench 'BenchmarkConvergence/hosts=HOSTS/containers=PORTS'
#      -benchtime=REPSx ./tests/bench/` (REST POST -> the container's flows on
#      every host's switch, seen by OpenFlow flow monitors).
#   2. OVN: tests/bench/ovnpeer (up.sh, fill.sh, measure.py, down.sh): Debian's
#      ovn-central and ovn-host, one ovn-controller per host, a logical switch
#      port per container, the same flow monitors.
#
# HOSTS and PORTS must be a cell of BenchmarkConvergence (hosts 2, 5, 10 x
# containers 100, 1000). Environment: REPS (ports measured per system and
# order, default 20); ORDER (switchyard-first, the default, or ovn-first);
# SWITCHYARD_TEST_DATABASE_URL (else the checkout's local PostgreSQL is
# started, and stopped again if this script started it); COMPARE_OUT (where
# results go, default a new /tmp/compare-ovn.* directory).
# Needs root. Installs ovn-central and ovn-host with apt-get if missing (without
# starting Debian's own OVN services). Stops everything it started and removes
# every namespace it made, also on failure or ^C. `make bench` does not run it.
set -euo pipefail
HOSTS=${1:?usage: compare-ovn.sh HOSTS PORTS}
PORTS=${2:?usage: compare-ovn.sh HOSTS PORTS}
REPS=${REPS:-20}
BENCH=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$BENCH/../.." && pwd)
PEER=$BENCH/ovnpeer
export PATH=/usr/local/go/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH
log() { echo "[compare-ovn $(date +%T)] $*" >&2; }
die() { log "FATAL: $*"; exit 1; }

[ "$(id -u)" = 0 ] || die "needs root (network namespaces, OVS)"
[[ "$HOSTS" =~ ^[0-9]+$ && "$PORTS" =~ ^[0-9]+$ && "$REPS" =~ ^[0-9]+$ ]] || die "HOSTS, PORTS and REPS must be numbers"
command -v go >/dev/null || die "go not found"
OUT=${COMPARE_OUT:-$(mktemp -d /tmp/compare-ovn.XXXXXX)}
mkdir -p "$OUT"
export OVNPEER_RUN=/tmp/ovp.$$            # up.sh creates it; down.sh removes it
GO_PID= CHILD= PG_STARTED= POLICY_RC=
# step CMD...: run CMD in the background and wait for it, so a signal runs the
# cleanup at once (bash runs traps only between foreground commands)
step() { "$@" & CHILD=$!; wait "$CHILD"; CHILD=; }

exec 3>&1 4>&2      # the script's own stdout/stderr, for the cleanup
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  set +e
  exec 1>&3 2>&4    # not the redirections of the step it interrupted
  if [ -n "$GO_PID" ] && kill -0 "$GO_PID" 2>/dev/null; then
    log "stopping the Switchyard benchmark (process group $GO_PID)"
    kill -INT -- "-$GO_PID" 2>/dev/null
    wait "$GO_PID" 2>/dev/null
    # a test binary that died without its cleanup leaves a lab whose creator
    # is dead: the lab's own sweep removes exactly those
    (cd "$ROOT" && go test -count=1 -run '^TestCleanupStale$' ./tests/lab/ >/dev/null 2>&1)
  fi
  if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
    kill -TERM "$CHILD"; wait "$CHILD" 2>/dev/null
  fi
  "$PEER/down.sh"
  [ -n "$POLICY_RC" ] && rm -f "$POLICY_RC"
  [ -n "$PG_STARTED" ] && (cd "$ROOT" && bash deploy/local/postgres.sh stop >/dev/null)
  log "results in $OUT"
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- OVN packages ---------------------------------------------------------------
if ! command -v ovn-northd >/dev/null || ! command -v ovn-controller >/dev/null; then
  log "installing ovn-central ovn-host"
  # Debian's packages start their own OVN services; this benchmark runs its own
  # daemons, so keep invoke-rc.d from starting them (policy-rc.d, during the install only)
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    POLICY_RC=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' > "$POLICY_RC"; chmod +x "$POLICY_RC"
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ovn-central ovn-host >/dev/null
  [ -n "$POLICY_RC" ] && rm -f "$POLICY_RC" && POLICY_RC=
fi

# --- database for Switchyard ---------------------------------------------------------
if [ -z "${SWITCHYARD_TEST_DATABASE_URL:-}" ]; then
  cd "$ROOT"
  bash deploy/local/postgres.sh status >/dev/null 2>&1 || PG_STARTED=1
  bash deploy/local/postgres.sh start >/dev/null
  SWITCHYARD_TEST_DATABASE_URL=$(bash deploy/local/postgres.sh url postgres)
  export SWITCHYARD_TEST_DATABASE_URL
fi

{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "command: tests/bench/compare-ovn.sh $HOSTS $PORTS (REPS=$REPS ORDER=${ORDER:-switchyard-first})"
  echo "commit: $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null)$(git -C "$ROOT" diff --quiet HEAD -- controller node 2>/dev/null || echo ' (controller/ or node/ modified)')"
  echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'), kernel $(uname -r)"
  echo "software: $(go version | cut -d' ' -f3), $(ovs-vswitchd --version | head -1), $(ovn-controller --version | head -1)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$OUT/run.txt"

switchyard() {
  log "Switchyard: BenchmarkConvergence hosts=$HOSTS containers=$PORTS, $REPS samples"
  local t=$EPOCHSECONDS
  set -m        # the benchmark in its own process group, so cleanup can stop all of it
  (cd "$ROOT" && exec go test -run '^$' -bench "^BenchmarkConvergence\$/^hosts=$HOSTS\$/^containers=$PORTS\$" \
    -benchtime="${REPS}x" -count=1 -timeout 30m ./tests/bench/) > "$OUT/switchyard.txt" 2>&1 &
  GO_PID=$!
  set +m
  wait "$GO_PID" || { tail -30 "$OUT/switchyard.txt" >&2; die "the Switchyard benchmark failed (log $OUT/switchyard.txt)"; }
  GO_PID=
  grep -qE "^BenchmarkConvergence/hosts=$HOSTS/containers=$PORTS(-[0-9]+)?[[:space:]]" "$OUT/switchyard.txt" || {
    tail -30 "$OUT/switchyard.txt" >&2
    die "no result for hosts=$HOSTS/containers=$PORTS (skipped? BenchmarkConvergence has hosts 2, 5, 10 x containers 100, 1000)"
  }
  echo "Switchyard part: $((EPOCHSECONDS - t)) s, load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/run.txt"
}

ovn() {
  log "OVN: $HOSTS hosts, $PORTS ports, $REPS samples per order"
  local t=$EPOCHSECONDS
  step "$PEER/up.sh" "$HOSTS" 2>>"$OUT/ovn.log"
  step "$PEER/fill.sh" "$PORTS" 2>>"$OUT/ovn.log"
  step python3 "$PEER/measure.py" "$REPS" > "$OUT/ovn.json" 2>>"$OUT/ovn.log"
  step "$PEER/down.sh" 2>>"$OUT/ovn.log"
  echo "OVN part: $((EPOCHSECONDS - t)) s, load average after: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/run.txt"
}

case "${ORDER:-switchyard-first}" in
  switchyard-first) switchyard; ovn ;;
  ovn-first) ovn; switchyard ;;
  *) die "ORDER must be switchyard-first or ovn-first" ;;
esac
echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)" | tee -a "$OUT/run.txt"

echo
python3 "$PEER/table.py" "$OUT/switchyard.txt" "$OUT/ovn.json" "$HOSTS" "$PORTS" | tee "$OUT/table.md"
