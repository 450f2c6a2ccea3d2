#!/bin/bash
# up.sh N: OVN 23.03 on N simulated hosts, the shape of Switchyard's lab.
# Namespace ovp<ID>-central runs the NB and SB ovsdb-servers and ovn-northd;
# each host ovp<ID>-h<i> runs its own ovsdb-server, ovs-vswitchd (userspace
# datapath, netdev) and ovn-controller, with Geneve tunnels over a Linux bridge
# underlay (ovp<ID>-ul, 192.168.200.0/24 inside these namespaces only).
# Creates $OVNPEER_RUN (which must not exist yet) and returns once every
# chassis is registered, the tunnel mesh is complete and `--wait=hv sync`
# answered. On failure, run down.sh (compare-ovn.sh does it in its trap).
set -euo pipefail
[ -n "${OVNPEER_RUN:-}" ] || { echo "set OVNPEER_RUN" >&2; exit 2; }
mkdir "$OVNPEER_RUN"                      # fails if a run is already there
. "$(dirname "$0")/lib.sh"
N=${1:?usage: up.sh N}
[ "$N" -ge 2 ] && [ "$N" -le 200 ] || die "N must be 2..200"
for b in ovsdb-server ovs-vswitchd ovn-controller ovn-northd ovn-nbctl; do
  command -v "$b" >/dev/null || die "missing $b (apt-get install openvswitch-switch ovn-central ovn-host)"
done
od -An -N2 -tx2 /dev/urandom | tr -d ' \n' > "$RUN/id"
mkdir -p "$CDIR"
: > "$RUN/netns.list"
echo "$N" > "$RUN/nhosts"
T0=$(now)

UL=$(ns_of ul)
add_netns "$UL"
ip -n "$UL" link set lo up
ip -n "$UL" link add br-ul type bridge stp_state 0 forward_delay 0
ip -n "$UL" link set br-ul up
ul_link() {           # ul_link ULNAME NS IFNAME: veth NS/IFNAME <-> br-ul port ULNAME
  ip link add "$1" netns "$UL" type veth peer name "$3" netns "$2"
  ip netns exec "$UL" ethtool -K "$1" tx off >/dev/null 2>&1 || true
  ip netns exec "$2" ethtool -K "$3" tx off >/dev/null 2>&1 || true
  ip -n "$UL" link set "$1" master br-ul up
  ip -n "$2" link set "$3" up
}

# --- central ----------------------------------------------------------------
CNS=$(ns_of central)
add_netns "$CNS"
ip -n "$CNS" link set lo up
ul_link ul-central "$CNS" eth0
ip -n "$CNS" addr add "$C_IP/24" dev eth0
for db in nb sb; do
  port=6641; [ $db = sb ] && port=6642
  ovsdb-tool create "$CDIR/ovn${db}_db.db" /usr/share/ovn/ovn-$db.ovsschema
  ip netns exec "$CNS" ovsdb-server "$CDIR/ovn${db}_db.db" \
    --remote="punix:$CDIR/ovn${db}_db.sock" --remote="ptcp:$port:$C_IP" \
    --pidfile="$CDIR/ovn${db}_db.pid" --unixctl="$CDIR/ovn${db}_db.ctl" \
    --log-file="$CDIR/ovn${db}_db.log" --detach --no-chdir -vconsole:off
done
nbctl --no-wait init
OVS_RUNDIR=$CDIR OVN_RUNDIR=$CDIR ip netns exec "$CNS" ovn-northd \
  --ovnnb-db="$OVN_NB_DB" --ovnsb-db="$OVN_SB_DB" \
  --pidfile="$CDIR/ovn-northd.pid" --unixctl="$CDIR/ovn-northd.ctl" \
  --log-file="$CDIR/ovn-northd.log" --detach --no-chdir -vconsole:off

# --- hosts ------------------------------------------------------------------
for i in $(seq 1 "$N"); do
  H=$RUN/h$i; ns=$(ns_of "h$i"); ip=$UL_NET.$i
  mkdir -p "$H"
  add_netns "$ns"
  ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  ip -n "$ns" link set lo up
  ul_link "ul-h$i" "$ns" eth-ul
  ovsdb-tool create "$H/conf.db" /usr/share/openvswitch/vswitch.ovsschema
  ip netns exec "$ns" ovsdb-server "$H/conf.db" --remote="punix:$H/db.sock" \
    --pidfile="$H/ovsdb-server.pid" --unixctl="$H/ovsdb-server.ctl" \
    --log-file="$H/ovsdb-server.log" --detach --no-chdir -vconsole:off
  hvsctl "$i" --no-wait init
  # OVS_RUNDIR puts the bridges' .mgmt sockets in $H (one set per host)
  OVS_RUNDIR=$H ip netns exec "$ns" ovs-vswitchd "unix:$H/db.sock" \
    --pidfile="$H/ovs-vswitchd.pid" --unixctl="$H/vswitchd.ctl" \
    --log-file="$H/ovs-vswitchd.log" --detach --no-chdir -vconsole:off
  hvsctl "$i" add-br br-phy -- set bridge br-phy datapath_type=netdev -- add-port br-phy eth-ul
  ip -n "$ns" addr add "$ip/24" dev br-phy
  ip -n "$ns" link set br-phy up
  hvsctl "$i" set open . \
    external_ids:system-id="h$i" external_ids:hostname="h$i" \
    external_ids:ovn-remote="tcp:$C_IP:6642" \
    external_ids:ovn-encap-type=geneve external_ids:ovn-encap-ip="$ip" \
    external_ids:ovn-bridge-datapath-type=netdev
  OVS_RUNDIR=$H OVN_RUNDIR=$H ip netns exec "$ns" ovn-controller "unix:$H/db.sock" \
    --pidfile="$H/ovn-controller.pid" \
    --log-file="$H/ovn-controller.log" --detach --no-chdir -vconsole:off
done

# --- readiness: every chassis, the full tunnel mesh, br-int on netdev --------
# (polls OVSDB state; bounded, and fails with what is missing)
for _ in $(seq 1 600); do
  c=$(sbctl --bare --columns=name list Chassis | grep -c . || true)
  [ "$c" -ge "$N" ] && break
  sleep 0.2
done
[ "$c" -ge "$N" ] || die "only $c/$N chassis registered"
for i in $(seq 1 "$N"); do
  for _ in $(seq 1 300); do
    t=$(hvsctl "$i" --bare --columns=name find interface type=geneve | grep -c . || true)
    [ "$t" -ge $((N - 1)) ] && break
    sleep 0.2
  done
  [ "$t" -ge $((N - 1)) ] || die "host $i has $t/$((N - 1)) geneve ports"
  [ "$(hvsctl "$i" get bridge br-int datapath_type)" = netdev ] || die "host $i: br-int is not netdev"
done
nbctl ls-add ls0
nbctl --wait=hv sync
log "up: $N hosts, central, tunnel mesh in $(elapsed "$T0" "$(now)") s (run $RUN, namespaces ovp$(run_id)-*)"
