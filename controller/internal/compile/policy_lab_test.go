package compile

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// labProgramsDir holds compiled programs that node/internal/converge's
// TestPolicyDatapath applies to real OVS (that package cannot import this
// one). Rewrite them with -update.
const labProgramsDir = "../../../node/internal/converge/testdata"

// labPolicyPhases: web and client on h1, remote on h2 (network blue,
// 10.1.0.0/16), in three phases of policy.
func labPolicyPhases() (*Snapshot, map[string][]openapi.Policy) {
	blue := network("blue", 1)
	mk := func(name string, k int, h string) openapi.Container {
		c := container(name, blue.Name, 1, k, h)
		c.Labels = map[string]string{"app": name}
		return c
	}
	s := &Snapshot{
		Revision: 1,
		Hosts: []openapi.Host{
			host("h1", "192.168.200.11", openapi.TunnelGeneve),
			host("h2", "192.168.200.12", openapi.TunnelGeneve),
		},
		Networks:   []openapi.Network{blue},
		Containers: []openapi.Container{mk("web", 0, "h1"), mk("client", 1, "h1"), mk("remote", 2, "h2")},
	}
	iperf := openapi.PolicyPort{Protocol: "TCP", Port: 5201}
	// web: ingress only from client on TCP 5201 (logged).
	isolate := logged(pol("isolate", "app=web", 1000, allow,
		[]openapi.PolicyRule{rule(peers(openapi.PolicyPeer{Selector: sel("app=client")}), iperf)}, nil))
	// client may not send anything to web (egress deny, above the allow;
	// logged).
	denyClient := logged(pol("deny-client", "app=client", 10, deny, nil,
		[]openapi.PolicyRule{rule(peers(openapi.PolicyPeer{Selector: sel("app=web")}))}))
	// web: ingress from remote on TCP 5201 too.
	allowRemote := pol("allow-remote", "app=web", 5, allow,
		[]openapi.PolicyRule{rule(peers(openapi.PolicyPeer{Selector: sel("app=remote")}), iperf)}, nil)
	return s, map[string][]openapi.Policy{
		"open":    nil,
		"isolate": {isolate},
		"deny":    {isolate, denyClient, allowRemote},
	}
}

// TestLabPrograms keeps node/internal/converge/testdata/policy-*.json equal to
// what the compiler makes of labPolicyPhases.
func TestLabPrograms(t *testing.T) {
	s, phases := labPolicyPhases()
	for phase, ps := range phases {
		ss := *s
		ss.Policies = ps
		for h, p := range Compile(&ss) {
			b, err := json.MarshalIndent(p, "", "  ")
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(labProgramsDir, "policy-"+phase+"-"+h+".json")
			if *update {
				if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
				continue
			}
			want, err := os.ReadFile(path)
			if err != nil || string(want) != string(b)+"\n" {
				t.Errorf("%s is not what the compiler makes (run with -update): %v", path, err)
			}
		}
	}
}
