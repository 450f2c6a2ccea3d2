package store

import (
	"context"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// The agent's version comes with its registration: stored and shown on the
// host, a new version is a host update, the same registration again
// changes nothing, an update through the API keeps it, and one longer than
// 128 characters is a 400 naming agentVersion.
func TestRegisterAgentVersion(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	reg := openapi.NodeRegistration{Address: "192.168.7.1", TunnelType: "geneve", AgentVersion: "v1.0.0 (go1.26)"}
	h, err := st.RegisterHost(ctx, "node", "h1", reg)
	if err != nil || h.AgentVersion != reg.AgentVersion {
		t.Fatalf("register: %+v %v", h, err)
	}
	again, err := st.RegisterHost(ctx, "node", "h1", reg)
	if err != nil || again.Revision != h.Revision {
		t.Fatalf("the same registration again moved the host: %d -> %d (%v)", h.Revision, again.Revision, err)
	}
	reg.AgentVersion = "v1.1.0 (go1.26)"
	up, err := st.RegisterHost(ctx, "node", "h1", reg)
	if err != nil || up.AgentVersion != reg.AgentVersion || up.Revision <= h.Revision {
		t.Fatalf("a new version: %+v %v", up, err)
	}
	up.Labels = map[string]string{"rack": "r1"}
	up.AgentVersion = "forged"
	put, err := st.UpdateHost(ctx, "admin", "h1", 0, up)
	if err != nil || put.AgentVersion != reg.AgentVersion || put.Labels["rack"] != "r1" {
		t.Fatalf("an API update: %+v %v", put, err)
	}
	reg.AgentVersion = strings.Repeat("v", 129)
	if _, err := st.RegisterHost(ctx, "node", "h1", reg); err == nil {
		t.Fatal("a 129-character version was accepted")
	} else if p, ok := problem.As(err); !ok || p.Status != 400 || p.Field != "agentVersion" {
		t.Fatalf("a 129-character version: %v", err)
	}
}
