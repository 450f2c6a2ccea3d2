#!/usr/bin/env python3
"""table.py SWITCHYARD_BENCH_OUTPUT OVN_JSON HOSTS PORTS: the side-by-side
table of compare-ovn.sh (markdown on stdout).

SWITCHYARD_BENCH_OUTPUT is the output of `go test -bench
'BenchmarkConvergence/hosts=H/containers=K'`; its result line carries the
benchmark's metrics as "<value> <unit>" pairs (p50-ms, p99-ms, ...).
OVN_JSON is measure.py's output. Exits 1 naming what is missing.
"""
import json
import os
import re
import sys


def bench_metrics(path, hosts, ports):
    want = re.compile(rf"^BenchmarkConvergence/hosts={hosts}/containers={ports}(-\d+)?\s")
    for line in open(path):
        if want.match(line):
            f = line.split()
            # name, iterations, then value/unit pairs
            return {f[i + 1]: float(f[i]) for i in range(2, len(f) - 1, 2)}
    raise SystemExit(f"no BenchmarkConvergence/hosts={hosts}/containers={ports} result in {path} "
                     "(skipped? see the file; BenchmarkConvergence has hosts 2, 5, 10 x containers 100, 1000)")


def ms(x):
    return "-" if x is None else f"{x:.0f}"


def main():
    sy_path, ovn_path, hosts, ports = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
    sy = bench_metrics(sy_path, hosts, ports)
    ovn = json.load(open(ovn_path))
    nb, cni = ovn["nb"], ovn["cni"]

    def p(d, k, q):
        return d.get(k, {}).get(q)

    def cpu_hosts(c):
        return c["ovn-controller"] + c["ovs-vswitchd"]

    rows = [
        ("Switchyard", "REST POST -> the container's flows on every host (own host: veth, netns, OVS port, flows)",
         sy.get("p50-ms"), sy.get("p99-ms"), int(sy.get("samples", 0)),
         sy.get("agents-cpu-ms/op", 0) + sy.get("vswitchd-cpu-ms/op", 0), sy.get("controller-cpu-ms/op")),
        ("OVN", "NB order: `lsp-add` -> the port's flows on every host (VIF already on br-int)",
         p(nb, "flows_all_hosts", "p50"), p(nb, "flows_all_hosts", "p99"), nb["samples"],
         cpu_hosts(nb["cpu_ms_per_port"]), nb["cpu_ms_per_port"]["central"]),
        ("OVN", "CNI order: `ovs-vsctl add-port` -> the port's flows on every host (LSP already in NB)",
         p(cni, "flows_all_hosts", "p50"), p(cni, "flows_all_hosts", "p99"), cni["samples"],
         cpu_hosts(cni["cpu_ms_per_port"]), cni["cpu_ms_per_port"]["central"]),
    ]
    print(f"### {hosts} hosts x {ports} ports: one-port convergence\n")
    print("| system | measurement | p50 ms | p99 ms | samples | CPU/change, host daemons + ovs-vswitchd (all hosts) | CPU/change, central |")
    print("|---|---|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r[0]} | {r[1]} | {ms(r[2])} | {ms(r[3])} | {r[4]} | {ms(r[5])} ms | {ms(r[6])} ms |")
    print()
    print("| ratio OVN / Switchyard (above 1: Switchyard converges sooner) | p50 | p99 |")
    print("|---|---:|---:|")
    for name, d in (("NB order", nb), ("CNI order", cni)):
        r50 = p(d, "flows_all_hosts", "p50") / sy["p50-ms"]
        r99 = p(d, "flows_all_hosts", "p99") / sy["p99-ms"]
        print(f"| OVN {name} / Switchyard | {r50:.2f} | {r99:.2f} |")
    print()
    print("Details (p50 / p99 ms):\n")
    print(f"- Switchyard: own host {ms(sy.get('local-p50-ms'))}, other hosts {ms(sy.get('remote-p50-ms'))} / "
          f"{ms(sy.get('remote-p99-ms'))}; POST answered {ms(sy.get('post-p50-ms'))}; "
          f"agents {ms(sy.get('agents-cpu-ms/op'))} + vswitchd {ms(sy.get('vswitchd-cpu-ms/op'))} ms CPU per change")
    print(f"- OVN NB order: own host {ms(p(nb, 'flows_own_host', 'p50'))}, other hosts "
          f"{ms(p(nb, 'flows_other_hosts', 'p50'))} / {ms(p(nb, 'flows_other_hosts', 'p99'))}; "
          f"ARP responder flow on every host (Switchyard's observable) {ms(p(nb, 'arp_all_hosts', 'p50'))} / "
          f"{ms(p(nb, 'arp_all_hosts', 'p99'))}; `--wait=hv` returned {ms(p(nb, 'wait_hv', 'p50'))} / "
          f"{ms(p(nb, 'wait_hv', 'p99'))}; LSP up {ms(p(nb, 'up', 'p50'))} / {ms(p(nb, 'up', 'p99'))}")
    print(f"- OVN CNI order: own host {ms(p(cni, 'flows_own_host', 'p50'))}, other hosts "
          f"{ms(p(cni, 'flows_other_hosts', 'p50'))} / {ms(p(cni, 'flows_other_hosts', 'p99'))}; "
          f"LSP up {ms(p(cni, 'up', 'p50'))} / {ms(p(cni, 'up', 'p99'))}")
    c = nb["cpu_ms_per_port"]
    print(f"- OVN CPU per change, NB order: ovn-controller {ms(c['ovn-controller'])}, ovs-vswitchd "
          f"{ms(c['ovs-vswitchd'])}, northd + NB + SB {ms(c['central'])}, host ovsdb-server {ms(c['host-ovsdb'])} ms "
          f"(/proc counts {1000 / os.sysconf('SC_CLK_TCK'):.0f} ms ticks: small figures are coarse)")
    print(f"- OVN flows per host: {min(ovn['flows_per_host'])} to {max(ovn['flows_per_host'])}; {ovn['ovn']}")


if __name__ == "__main__":
    main()
