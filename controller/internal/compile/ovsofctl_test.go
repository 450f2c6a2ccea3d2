package compile

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// TestOVSParse feeds rendered programs, with ports substituted the way the
// agent does, to `ovs-ofctl -O OpenFlow15 parse-flows`: the syntax check of
// a real replace-flows file, offline. It skips without ovs-ofctl, unless
// CI=true.
func TestOVSParse(t *testing.T) {
	bin, err := exec.LookPath("ovs-ofctl")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("ovs-ofctl not found (install openvswitch-common)")
		}
		t.Skip("ovs-ofctl not found")
	}
	progs := map[string]*openapi.Program{}
	for name, s := range goldenScenarios() {
		for h, p := range Compile(s) {
			progs[name+"/"+h] = p
		}
	}
	for name, s := range serviceScenarios() {
		for h, p := range Compile(s) {
			progs[name+"/"+h] = p
		}
	}
	for name, ps := range policyScenarios() {
		for h, p := range Compile(withPolicies(ps)) {
			progs[name+"/"+h] = p
		}
	}
	w := &randomWorld{r: rand.New(rand.NewPCG(42, 42))}
	for i := 0; i < 5; i++ {
		for h, p := range Compile(w.snapshot()) {
			progs["random"+strconv.Itoa(i)+"/"+h] = p
		}
	}
	dir := t.TempDir()
	for name, p := range progs {
		file := filepath.Join(dir, strings.ReplaceAll(name, "/", "_")+".flows")
		if err := os.WriteFile(file, []byte(substitutePorts(p)), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "-O", "OpenFlow15", "parse-flows", file).CombinedOutput()
		if err != nil {
			t.Errorf("%s: ovs-ofctl parse-flows: %v\n%s", name, err, out)
			continue
		}
		if got := strings.Count(string(out), "OFPT_FLOW_MOD"); got != len(p.Flows) {
			t.Errorf("%s: ovs-ofctl parsed %d flows, program has %d", name, got, len(p.Flows))
		}
		for _, g := range p.Groups {
			spec := "group_id=" + strconv.FormatUint(uint64(g.ID), 10) + "," + g.Spec
			if out, err := exec.Command(bin, "-O", "OpenFlow15", "parse-group", spec).CombinedOutput(); err != nil {
				t.Errorf("%s: ovs-ofctl parse-group %s: %v\n%s", name, spec, err, out)
			}
		}
	}
}

// substitutePorts renders p and replaces ${port:NAME} with ofports, as the
// agent does.
func substitutePorts(p *openapi.Program) string {
	pairs := []string{portRef(openapi.DNSPortName), "65000", portRef(openapi.GatewayPortName), "65001"}
	n := 1
	for _, tp := range p.Tunnels {
		pairs = append(pairs, portRef(tp.Name), strconv.Itoa(n))
		n++
	}
	for _, cp := range p.Containers {
		pairs = append(pairs, portRef(cp.Name), strconv.Itoa(n))
		n++
	}
	return strings.NewReplacer(pairs...).Replace(Render(p))
}
