#!/usr/bin/env python3
"""measure.py REPS: one-port convergence of the OVN run in $OVNPEER_RUN.

Observed the way Switchyard's BenchmarkConvergence observes its own flows:
one `ovs-ofctl -O OpenFlow15 monitor <host>/br-int.mgmt watch:!actions` per
host (an OpenFlow flow monitor; ovs-vswitchd pushes every flow change), each
line timestamped as it is read. Nothing is polled.

A port's flows are the flows whose match names it: its IP (arp_tpa, nw_src,
nw_dst, arp_spa), its MAC (dl_dst, dl_src), its tunnel key (reg14, reg15)
or, on its own host, its ofport (in_port). "Flows on every host" is, for
each host, the last such flow added or changed after t0, and the figure is
the slowest host: ovn-controller writes a port's flows over several
iterations (logical flows first, then the binding's), whereas Switchyard
installs all of a container's flows on a host in one bundle, so the first
ARP responder flow it watches is also the last.

Two orders, REPS ports each, on the hosts in turn (port K+1, K+2, ...):
  nb:  the VIF is on br-int already (iface-id set); t0, then
       `ovn-nbctl --wait=hv lsp-add ...` (addresses + port security).
       Also reported: when --wait=hv returned, when the LSP was up, and when
       the ARP responder flow (Switchyard's observable) was on every host.
  cni: the LSP exists already; t0, then `ovs-vsctl add-port br-int vc<j>
       -- set interface ... iface-id=c<j>` on the port's host (what a CNI
       plugin does). Also reported: when the LSP was up.
Between ports, with no clock running: `--wait=hv sync` (every chassis has
installed everything), and the monitors' pipes are drained.

CPU per port: utime+stime (/proc/PID/stat) of every daemon of the run from
t0 until the settle above, grouped: ovn-controller (all hosts), ovs-vswitchd
(all hosts), central (ovn-northd + NB + SB ovsdb-server), host ovsdb-server.

Prints progress on stderr and one JSON object on stdout.
"""
import glob
import json
import math
import os
import ctypes
import re
import signal
import subprocess
import sys
import threading
import time

RUN = os.environ["OVNPEER_RUN"]
HERE = os.path.dirname(os.path.abspath(__file__))
LIB = os.path.join(HERE, "lib.sh")
HZ = os.sysconf("SC_CLK_TCK")
os.environ["OVN_NB_DB"] = f"unix:{RUN}/central/ovnnb_db.sock"
os.environ["OVN_SB_DB"] = f"unix:{RUN}/central/ovnsb_db.sock"
DEBUG = os.environ.get("OVNPEER_DEBUG") == "1"
EVENT = re.compile(r"event=(ADDED|MODIFIED)\b")


def lib(*args):
    """run a lib.sh function (plumb, attach, ...) with the run's environment"""
    subprocess.run(["bash", "-c", '. "$0"; "$@"', LIB, *args], check=True)


def run(*argv, env=None):
    """run argv, return its stdout; on failure exit naming the command and its stderr"""
    p = subprocess.run(argv, capture_output=True, text=True, env=env)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(argv)}: exit {p.returncode}: {p.stderr.strip()}")
    return p.stdout.strip()


def nbctl(*args):
    return run("ovn-nbctl", "--timeout=120", *args)


def sbctl(*args):
    return run("ovn-sbctl", "--timeout=60", *args)


def vsctl(h, *args):
    return run("ovs-vsctl", f"--db=unix:{RUN}/h{h}/db.sock", "--timeout=120", *args)


def ip_of(j):
    n = j + 1
    return f"10.244.{n // 256}.{n % 256}"


def mac_of(j):
    n = j + 1
    return f"0a:58:0a:f4:{n // 256:02x}:{n % 256:02x}"


def lsp_add(j):
    a = f"{mac_of(j)} {ip_of(j)}"
    return ["lsp-add", "ls0", f"c{j}", "--", "lsp-set-addresses", f"c{j}", a,
            "--", "lsp-set-port-security", f"c{j}", a]


def die_with_parent():
    """in a child: SIGKILL it when this process dies (PR_SET_PDEATHSIG)"""
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)


def pct(xs, p):
    """nearest rank, as tests/bench/stats_test.go's pct"""
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[max(0, min(math.ceil(p / 100 * len(s)) - 1, len(s) - 1))]


class Monitor:
    """one host's flow monitor: (time, line) of every ADDED/MODIFIED event"""

    def __init__(self, h):
        env = dict(os.environ, OVS_RUNDIR=f"{RUN}/h{h}")
        self.proc = subprocess.Popen(
            ["ovs-ofctl", "-O", "OpenFlow15", "monitor", f"unix:{RUN}/h{h}/br-int.mgmt", "watch:!actions"],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, preexec_fn=die_with_parent)
        self.lock = threading.Lock()
        self.events = []
        self.last = time.time()
        self.lines = 0
        threading.Thread(target=self.read, daemon=True).start()

    def read(self):
        for line in self.proc.stdout:
            t = time.time()
            with self.lock:
                self.last = t
                self.lines += 1
                if EVENT.search(line):
                    self.events.append((t, line))

    def take(self, since):
        with self.lock:
            ev = [e for e in self.events if e[0] >= since]
            self.events = []
        return ev

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def drain(mons, quiet=0.1, limit=10.0):
    """wait until no monitor has printed for `quiet` s: the flow updates sent
    before the last barrier reply are read and timestamped"""
    end = time.time() + limit
    while time.time() < end:
        with_last = max(m.last for m in mons)
        if time.time() - with_last >= quiet:
            return
        time.sleep(quiet / 2)


def port_re(j, key, ofport):
    ip = re.escape(ip_of(j))
    mac = re.escape(mac_of(j))
    k = f"0x{key:x}"
    pats = [rf"(arp_tpa|arp_spa|nw_src|nw_dst)={ip}(?![0-9./])", rf"(dl_dst|dl_src)={mac}(?![0-9a-f:/])",
            rf"reg1[45]={k}(?![0-9a-fx/])"]
    if ofport:
        pats.append(rf"in_port={ofport}(?![0-9])")
    return re.compile("|".join(pats))


def cpu_ticks():
    groups = {"ovn-controller": 0, "ovs-vswitchd": 0, "central": 0, "host-ovsdb": 0}
    files = [(p, "central") for p in glob.glob(f"{RUN}/central/*.pid")]
    for d, g in (("ovn-controller", "ovn-controller"), ("ovs-vswitchd", "ovs-vswitchd"), ("ovsdb-server", "host-ovsdb")):
        files += [(p, g) for p in glob.glob(f"{RUN}/h*/{d}.pid")]
    for path, g in files:
        try:
            pid = int(open(path).read().strip())
            st = open(f"/proc/{pid}/stat").read()
            f = st[st.rindex(")") + 2:].split()
            groups[g] += int(f[11]) + int(f[12])
        except (OSError, ValueError):
            pass
    return groups


def settle(mons):
    nbctl("--wait=hv", "sync")
    drain(mons)


def one(mons, n, j, order):
    h = (j - 1) % n + 1
    lib("plumb", str(j))
    if order == "nb":
        lib("attach", str(j))
    else:
        nbctl("--wait=hv", *lsp_add(j))
    settle(mons)
    for m in mons:
        m.take(time.time())
    c0 = cpu_ticks()
    r = {"port": j, "host": h}
    t0 = time.time()
    if order == "nb":
        nbctl("--wait=hv", *lsp_add(j))
        r["wait_hv"] = time.time() - t0
    else:
        vsctl(h, "add-port", "br-int", f"vc{j}", "--", "set", "interface", f"vc{j}", f"external_ids:iface-id=c{j}")
    nbctl("wait-until", "Logical_Switch_Port", f"c{j}", "up=true")
    r["up"] = time.time() - t0
    settle(mons)
    c1 = cpu_ticks()
    r["cpu_ms"] = {g: (c1[g] - c0[g]) * 1000 / HZ for g in c0}
    key = int(sbctl("--bare", "--columns=tunnel_key", "find", "Port_Binding", f"logical_port=c{j}"))
    ofport = vsctl(h, "get", "interface", f"vc{j}", "ofport")
    rx = port_re(j, key, ofport)
    arp = re.compile(rf"arp_tpa={re.escape(ip_of(j))}(?![0-9.])")
    last, first_arp = {}, {}
    for i, m in enumerate(mons, 1):
        for t, line in m.take(t0):
            if rx.search(line):
                last[i] = max(last.get(i, 0), t - t0)
                if DEBUG:
                    print(f"[measure] c{j} h{i} +{(t - t0) * 1000:.1f} ms {line.strip()}", file=sys.stderr)
            if arp.search(line) and i not in first_arp:
                first_arp[i] = t - t0
    missing = [i for i in range(1, n + 1) if i not in last]
    if missing:
        raise SystemExit(f"port c{j} ({order}): no flow of it appeared on hosts {missing}")
    r["flows_all_hosts"] = max(last.values())
    r["flows_own_host"] = last[h]
    r["flows_other_hosts"] = max(v for i, v in last.items() if i != h)
    if order == "nb":
        r["arp_all_hosts"] = max(first_arp.values()) if len(first_arp) == n else None
    return r


def summary(rs):
    out = {"samples": len(rs)}
    for k in ("flows_all_hosts", "flows_own_host", "flows_other_hosts", "wait_hv", "up", "arp_all_hosts"):
        xs = [r[k] * 1000 for r in rs if r.get(k) is not None]
        if xs:
            out[k] = {"p50": pct(xs, 50), "p99": pct(xs, 99), "max": max(xs)}
    out["cpu_ms_per_port"] = {g: sum(r["cpu_ms"][g] for r in rs) / len(rs) for g in rs[0]["cpu_ms"]}
    return out


def main():
    # TERM/INT end the run through the finally below (monitors stopped)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda s, f: sys.exit(128 + s))
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    n = int(open(f"{RUN}/nhosts").read())
    k = int(open(f"{RUN}/filled").read())
    mons = [Monitor(h) for h in range(1, n + 1)]
    try:
        settle(mons)
        res = {"hosts": n, "ports": k, "ovn": subprocess.run(["ovn-nbctl", "--version"], capture_output=True,
                                                              text=True).stdout.splitlines()[0]}
        j = k
        for order in ("nb", "cni"):
            rs = []
            for _ in range(reps):
                j += 1
                r = one(mons, n, j, order)
                print(f"[measure] {order} c{j}@h{r['host']}: flows on every host {r['flows_all_hosts'] * 1000:.0f} ms, "
                      f"up {r['up'] * 1000:.0f} ms", file=sys.stderr, flush=True)
                rs.append(r)
            res[order] = summary(rs)
            res[order + "_raw"] = rs
        res["flows_per_host"] = [len(subprocess.run(
            ["ovs-ofctl", "-O", "OpenFlow15", "dump-flows", f"unix:{RUN}/h{h}/br-int.mgmt"],
            env=dict(os.environ, OVS_RUNDIR=f"{RUN}/h{h}"), capture_output=True, text=True).stdout.splitlines()) - 1
            for h in range(1, n + 1)]
        print(json.dumps(res))
    finally:
        for m in mons:
            m.stop()


if __name__ == "__main__":
    main()
