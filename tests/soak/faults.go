package soak

import (
	"context"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/tests/cluster"
)

// The faults, from the failure matrix (docs/failure-matrix.md). Each
// inject returns its heal; between the two the runner keeps operating.
// Faults on one host leave it out of the checker's passes until healed.

// faultKinds, in the order the runner cycles through them.
var faultKinds = []string{"agent-kill", "ovs-restart", "replica-kill", "postgres-restart", "partition", "ovsdb-restart"}

// faultRecord is one injected fault, for the report.
type faultRecord struct {
	Kind, Host string
	At         time.Time
	// Active is how long the fault lasted (inject to heal).
	Active time.Duration
	// Detail is what was seen during the fault (e.g. time to NotReady).
	Detail string
	// Converged is heal to the first clean pass of the checker; zero with
	// Problems when it did not converge within the bound.
	Converged time.Duration
	Problems  []string
}

// injector holds what the faults act on.
type injector struct {
	t       testing.TB
	c       *cluster.Cluster
	api     *api
	pg      *postgres
	standby *cluster.Replica // the replica the agents do not talk to
}

// inject starts fault kind on host (ignored by the cluster-wide faults) and
// returns the host to leave out of checks ("" for none), what it saw (for
// the report), and the heal, which returns what it saw.
func (in *injector) inject(kind, host string) (skip, detail string, heal func() string, err error) {
	switch kind {
	case "agent-kill":
		in.c.Agents[host].Kill()
		return host, "", func() string {
			if err := in.c.Agents[host].Restart(); err != nil {
				return "restart: " + err.Error()
			}
			return ""
		}, nil
	case "ovs-restart":
		start := time.Now()
		in.c.Lab.Host(host).RestartOVS(in.t)
		return host, fmt.Sprintf("ovs-vswitchd restarted in %v", time.Since(start).Round(time.Millisecond)), nil, nil
	case "ovsdb-restart":
		// ovs-vswitchd keeps forwarding; the agent reconnects to OVSDB.
		start := time.Now()
		in.c.Lab.Host(host).RestartOVSDB(in.t)
		return host, fmt.Sprintf("ovsdb-server restarted in %v", time.Since(start).Round(time.Millisecond)), nil, nil
	case "replica-kill":
		// The replica the agents talk to dies; they and the soak move to
		// the standby; a new standby starts (two replicas again).
		in.c.Controller.Kill()
		in.c.SwitchTo(in.standby)
		in.api.setBase(in.standby.URL)
		return "", "", func() string {
			start := time.Now()
			in.standby = in.c.StartReplica(in.t)
			return fmt.Sprintf("new standby ready in %v", time.Since(start).Round(time.Millisecond))
		}, nil
	case "postgres-restart":
		if err := in.pg.crash(); err != nil {
			return "", "", nil, err
		}
		// Down for a few seconds while the runner keeps writing (its
		// writes retry), then back by itself.
		done := make(chan error, 1)
		go func() {
			time.Sleep(3 * time.Second)
			done <- in.pg.restart()
		}()
		return "", "crashed (pg_ctl stop -m immediate), back 3 s later", func() string {
			if err := <-done; err != nil {
				return "restart: " + err.Error()
			}
			return ""
		}, nil
	case "partition":
		return in.partition(host)
	}
	return "", "", nil, fmt.Errorf("unknown fault %q", kind)
}

// partitionTable is the soak's nftables table in a host's namespace.
const partitionTable = "soak_partition"

// partition drops the host's packets to the controller (the relay on the
// underlay that tests/cluster runs): the tunnels to other hosts stay up.
// It returns once the API shows the host NotReady.
func (in *injector) partition(host string) (string, string, func() string, error) {
	ip, port, err := net.SplitHostPort(strings.TrimPrefix(in.c.AgentURL, "http://"))
	if err != nil {
		return "", "", nil, err
	}
	h := in.c.Lab.Host(host)
	rules := fmt.Sprintf("table inet %s {\n chain out {\n  type filter hook output priority 0; policy accept;\n  ip daddr %s tcp dport %s drop\n }\n chain in {\n  type filter hook input priority 0; policy accept;\n  ip saddr %s tcp sport %s drop\n }\n}\n",
		partitionTable, ip, port, ip, port)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if out, err := h.Run(ctx, "sh", "-c", "printf '%s' \"$0\" | nft -f -", rules); err != nil {
		return "", "", nil, fmt.Errorf("nft: %v %s", err, out)
	}
	heal := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if out, err := h.Run(ctx, "nft", "delete", "table", "inet", partitionTable); err != nil {
			return fmt.Sprintf("heal: %v %s", err, out)
		}
		return ""
	}
	start := time.Now()
	for {
		var hs openapi.Host
		code, err := in.api.do(ctx, "GET", "/api/v1/hosts/"+host, nil, &hs)
		if code == 200 && hs.Status == openapi.HostNotReady {
			break
		}
		if ctx.Err() != nil {
			heal()
			return host, "", nil, fmt.Errorf("%s still %s 30 s into the partition: %v", host, hs.Status, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return host, fmt.Sprintf("NotReady after %v", time.Since(start).Round(100*time.Millisecond)), heal, nil
}
