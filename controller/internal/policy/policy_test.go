package policy

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// The Kubernetes network policy e2e layout: pods a, b, c in "namespaces"
// x, y, z (a label here), named x-a .. z-c, at 10.0.0.1 .. 10.0.0.9.
func pods() []Container {
	var out []Container
	n := 1
	for _, ns := range []string{"x", "y", "z"} {
		for _, pod := range []string{"a", "b", "c"} {
			out = append(out, Container{Name: ns + "-" + pod, IP: netip.AddrFrom4([4]byte{10, 0, 0, byte(n)}),
				Labels: map[string]string{"ns": ns, "pod": pod}})
			n++
		}
	}
	return out
}

func str(s string) *string { return &s }

func sel(s string) openapi.PolicyPeer { return openapi.PolicyPeer{Selector: str(s)} }

func cidr(c string, except ...string) openapi.PolicyPeer {
	return openapi.PolicyPeer{CIDR: c, Except: except}
}

func tcp(port, end int) openapi.PolicyPort {
	return openapi.PolicyPort{Protocol: "TCP", Port: port, EndPort: end}
}

// pol builds a policy; priority 0 means the default 1000.
func pol(name, selector, action string, priority int, ingress, egress []openapi.PolicyRule) openapi.Policy {
	if priority == 0 {
		priority = 1000
	}
	if action == "" {
		action = openapi.ActionAllow
	}
	return openapi.Policy{Meta: openapi.Meta{ID: "id-" + name}, Name: name, Selector: selector, Priority: priority,
		Action: action, Ingress: ingress, Egress: egress}
}

func rules(r ...openapi.PolicyRule) []openapi.PolicyRule {
	if r == nil {
		return []openapi.PolicyRule{}
	}
	return r
}

func from(peers ...openapi.PolicyPeer) openapi.PolicyRule { return openapi.PolicyRule{Peers: peers} }

// all is a truth table where every pair is allowed.
const all = `
XXXXXXXXX
XXXXXXXXX
XXXXXXXXX
XXXXXXXXX
XXXXXXXXX
XXXXXXXXX
XXXXXXXXX
XXXXXXXXX
XXXXXXXXX`

// checkTable compares a matrix with a truth table (rows sources x-a..z-c,
// columns destinations; X allowed, . denied) and prints both and the
// differing pairs on failure.
func checkTable(t *testing.T, m Matrix, want string) {
	t.Helper()
	rows := strings.Fields(want)
	if len(rows) != len(m.Names) {
		t.Fatalf("table has %d rows, matrix %d", len(rows), len(m.Names))
	}
	var diff []string
	for i, row := range rows {
		for j, ch := range row {
			if got := m.Cells[i][j].Allowed; got != (ch == 'X') {
				v := m.Cells[i][j]
				diff = append(diff, fmt.Sprintf("%s -> %s: got allowed=%v (egress %+v, ingress %+v)", m.Names[i], m.Names[j], got, v.Egress, v.Ingress))
			}
		}
	}
	if len(diff) > 0 {
		t.Fatalf("matrix differs in %d pairs:\n%s\ngot:\n%swant:%s", len(diff), strings.Join(diff, "\n"), m, want)
	}
}

// Truth tables on TCP 80, in the Kubernetes e2e style.
func TestTruthTables(t *testing.T) {
	cases := []struct {
		name     string
		policies []openapi.Policy
		want     string
	}{
		{"no policy: baseline allows all", nil, all},
		{"default deny ingress in x", []openapi.Policy{pol("deny-x", "ns=x", "", 0, rules(), nil)}, `
			X..XXXXXX
			.X.XXXXXX
			..XXXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX`},
		{"default deny egress everywhere", []openapi.Policy{pol("deny-out", "", "", 0, nil, rules())}, `
			X........
			.X.......
			..X......
			...X.....
			....X....
			.....X...
			......X..
			.......X.
			........X`},
		{"allow ingress from the same ns", []openapi.Policy{pol("same-ns", "ns=x", "", 0, rules(from(sel("ns=x"))), nil)}, `
			XXXXXXXXX
			XXXXXXXXX
			XXXXXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX`},
		{"allow ingress to x-a from pod=b", []openapi.Policy{pol("from-b", "ns=x,pod=a", "", 0, rules(from(sel("pod=b"))), nil)}, `
			XXXXXXXXX
			XXXXXXXXX
			.XXXXXXXX
			.XXXXXXXX
			XXXXXXXXX
			.XXXXXXXX
			.XXXXXXXX
			XXXXXXXXX
			.XXXXXXXX`},
		{"allow from a combination of labels", []openapi.Policy{pol("combo", "ns=x,pod=a", "", 0, rules(from(sel("ns=y,pod in (a,b)"))), nil)}, `
			XXXXXXXXX
			.XXXXXXXX
			.XXXXXXXX
			XXXXXXXXX
			XXXXXXXXX
			.XXXXXXXX
			.XXXXXXXX
			.XXXXXXXX
			.XXXXXXXX`},
		{"peers are ORed, two rules too", []openapi.Policy{pol("or", "ns=x,pod=a", "", 0,
			rules(from(sel("ns=y,pod=a"), sel("ns=z,pod=c")), from(sel("ns=x,pod=b"))), nil)}, `
			XXXXXXXXX
			XXXXXXXXX
			.XXXXXXXX
			XXXXXXXXX
			.XXXXXXXX
			.XXXXXXXX
			.XXXXXXXX
			.XXXXXXXX
			XXXXXXXXX`},
		{"egress at the source and ingress at the destination both count", []openapi.Policy{
			pol("x-out-to-y", "ns=x", "", 0, nil, rules(from(sel("ns=y")))),
			pol("y-in-from-xa", "ns=y", "", 0, rules(from(sel("ns=x,pod=a"))), nil)}, `
			X..XXX...
			.X.......
			..X......
			XXXX..XXX
			XXX.X.XXX
			XXX..XXXX
			XXX...XXX
			XXX...XXX
			XXX...XXX`},
		{"a deny policy does not isolate", []openapi.Policy{pol("deny-z-to-x", "ns=x", openapi.ActionDeny, 0, rules(from(sel("ns=z"))), nil)}, `
			XXXXXXXXX
			XXXXXXXXX
			XXXXXXXXX
			XXXXXXXXX
			XXXXXXXXX
			XXXXXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX`},
		{"a deny of a lower number beats an allow", []openapi.Policy{
			pol("allow-all-in", "ns=x", "", 100, rules(from(sel(""))), nil),
			pol("deny-y", "ns=x", openapi.ActionDeny, 10, rules(from(sel("ns=y"))), nil)}, `
			XXXXXXXXX
			XXXXXXXXX
			XXXXXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX
			XXXXXXXXX
			XXXXXXXXX
			XXXXXXXXX`},
		{"an allow of a lower number beats a deny", []openapi.Policy{
			pol("deny-all-in", "ns=x", openapi.ActionDeny, 100, rules(from(sel(""))), nil),
			pol("allow-pod-c", "ns=x", "", 10, rules(from(sel("pod=c"))), nil)}, `
			X..XXXXXX
			.X.XXXXXX
			XXXXXXXXX
			...XXXXXX
			...XXXXXX
			XXXXXXXXX
			...XXXXXX
			...XXXXXX
			XXXXXXXXX`},
		{"ties: deny wins", []openapi.Policy{
			pol("allow-y", "ns=x", "", 50, rules(from(sel("ns=y"))), nil),
			pol("deny-y-a", "ns=x", openapi.ActionDeny, 50, rules(from(sel("ns=y,pod=a"))), nil)}, `
			X..XXXXXX
			.X.XXXXXX
			..XXXXXXX
			...XXXXXX
			XXXXXXXXX
			XXXXXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX`},
		{"absent ingress does not isolate, empty egress does", []openapi.Policy{
			pol("egress-only", "ns=z", "", 0, nil, rules(from(sel("ns=z"))))}, `
			XXXXXXXXX
			XXXXXXXXX
			XXXXXXXXX
			XXXXXXXXX
			XXXXXXXXX
			XXXXXXXXX
			......XXX
			......XXX
			......XXX`},
		{"cidr peer matches containers by address, whatever their labels", []openapi.Policy{
			pol("in-from-cidr", "ns=x,pod=a", "", 0, rules(from(cidr("10.0.0.0/29", "10.0.0.4/31"))), nil)}, `
			XXXXXXXXX
			XXXXXXXXX
			XXXXXXXXX
			.XXXXXXXX
			.XXXXXXXX
			XXXXXXXXX
			XXXXXXXXX
			.XXXXXXXX
			.XXXXXXXX`},
		{"ports elsewhere do not match", []openapi.Policy{
			pol("in-81", "ns=x", "", 0, rules(openapi.PolicyRule{Ports: []openapi.PolicyPort{tcp(81, 0), {Protocol: "UDP", Port: 80}}}), nil)}, `
			X..XXXXXX
			.X.XXXXXX
			..XXXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX
			...XXXXXX`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := New(pods(), c.policies)
			if err != nil {
				t.Fatal(err)
			}
			checkTable(t, e.Matrix("TCP", 80), c.want)
		})
	}
}

// Single verdicts, with the reason and the deciding rule.
func TestVerdicts(t *testing.T) {
	ext := func(ip string) Endpoint { return Endpoint{IP: netip.MustParseAddr(ip)} }
	cases := []struct {
		name     string
		policies []openapi.Policy
		src, dst string // container names, or addresses
		proto    string
		port     int
		allowed  bool
		egress   string // reason, policy, rule as "reason policy dir[i]"
		ingress  string
	}{
		{"baseline", nil, "x-a", "x-b", "TCP", 80, true, "baseline", "baseline"},
		{"self is never judged", []openapi.Policy{pol("deny", "", "", 0, rules(), rules())}, "x-a", "x-a", "TCP", 80, true, "self", "self"},
		{"rule decides with its identity",
			[]openapi.Policy{pol("web", "pod=b", "", 0, rules(from(sel("ns=z")), from(sel("ns=x"))), nil)},
			"x-a", "x-b", "TCP", 80, true, "baseline", "rule web ingress[1]"},
		{"isolated names the first isolating allow policy",
			[]openapi.Policy{pol("zz", "pod=b", "", 0, rules(from(sel("ns=z"))), nil), pol("aa", "", "", 0, rules(from(sel("ns=y"))), nil),
				pol("deny-other", "", openapi.ActionDeny, 0, rules(from(sel("ns=q"))), nil)},
			"x-a", "x-b", "TCP", 80, false, "baseline", "isolated aa"},
		{"port range: inside", []openapi.Policy{pol("range", "ns=x", "", 0, rules(openapi.PolicyRule{Ports: []openapi.PolicyPort{tcp(80, 90)}}), nil)},
			"y-a", "x-a", "TCP", 90, true, "baseline", "rule range ingress[0]"},
		{"port range: above", []openapi.Policy{pol("range", "ns=x", "", 0, rules(openapi.PolicyRule{Ports: []openapi.PolicyPort{tcp(80, 90)}}), nil)},
			"y-a", "x-a", "TCP", 91, false, "baseline", "isolated range"},
		{"port range: other protocol", []openapi.Policy{pol("range", "ns=x", "", 0, rules(openapi.PolicyRule{Ports: []openapi.PolicyPort{tcp(80, 90)}}), nil)},
			"y-a", "x-a", "UDP", 85, false, "baseline", "isolated range"},
		{"no port is every port of the protocol", []openapi.Policy{pol("udp", "ns=x", "", 0, rules(openapi.PolicyRule{Ports: []openapi.PolicyPort{{Protocol: "UDP"}}}), nil)},
			"y-a", "x-a", "UDP", 5353, true, "baseline", "rule udp ingress[0]"},
		{"empty ports match ICMP too", []openapi.Policy{pol("any", "ns=x", "", 0, rules(from(sel("ns=y"))), nil)},
			"y-a", "x-a", "ICMP", 0, true, "baseline", "rule any ingress[0]"},
		{"ICMP rule allows ICMP", []openapi.Policy{pol("ping", "ns=x", "", 0, rules(openapi.PolicyRule{Ports: []openapi.PolicyPort{{Protocol: "ICMP"}}}), nil)},
			"y-a", "x-a", "ICMP", 0, true, "baseline", "rule ping ingress[0]"},
		{"ICMP rule does not allow TCP", []openapi.Policy{pol("ping", "ns=x", "", 0, rules(openapi.PolicyRule{Ports: []openapi.PolicyPort{{Protocol: "ICMP"}}}), nil)},
			"y-a", "x-a", "TCP", 80, false, "baseline", "isolated ping"},
		{"egress to a cidr: outside the except", []openapi.Policy{pol("out", "ns=x", "", 0, nil, rules(from(cidr("192.168.0.0/16", "192.168.1.0/24"))))},
			"x-a", "192.168.2.1", "TCP", 443, true, "rule out egress[0]", "external"},
		{"egress to a cidr: inside the except", []openapi.Policy{pol("out", "ns=x", "", 0, nil, rules(from(cidr("192.168.0.0/16", "192.168.1.0/24"))))},
			"x-a", "192.168.1.7", "TCP", 443, false, "isolated out", "external"},
		{"a selector peer never matches an outside address", []openapi.Policy{pol("out", "ns=x", "", 0, nil, rules(from(sel(""))))},
			"x-a", "8.8.8.8", "UDP", 53, false, "isolated out", "external"},
		{"ingress from outside by cidr", []openapi.Policy{pol("in", "ns=x", "", 0, rules(from(cidr("0.0.0.0/0", "10.0.0.0/8"))), nil)},
			"172.16.0.1", "x-a", "TCP", 80, true, "external", "rule in ingress[0]"},
		{"an address of a container is that container", []openapi.Policy{pol("in", "ns=x", "", 0, rules(from(sel("ns=y"))), nil)},
			"10.0.0.4", "x-a", "TCP", 80, true, "baseline", "rule in ingress[0]"},
		{"deny in egress at the source", []openapi.Policy{pol("no-z", "", openapi.ActionDeny, 5, nil, rules(from(sel("ns=z"))))},
			"x-a", "z-a", "TCP", 80, false, "rule no-z egress[0]", "baseline"},
		{"a lower-number allow in another policy overrides an isolating allow policy's silence and a deny",
			[]openapi.Policy{pol("deny", "", openapi.ActionDeny, 20, rules(from(sel(""))), nil), pol("ok", "", "", 10, rules(from(sel("pod=a"))), nil)},
			"y-a", "x-b", "TCP", 80, true, "baseline", "rule ok ingress[0]"},
		{"a higher-number allow cannot override a deny", []openapi.Policy{pol("deny", "", openapi.ActionDeny, 20, rules(from(sel(""))), nil), pol("ok", "", "", 30, rules(from(sel("pod=a"))), nil)},
			"y-a", "x-b", "TCP", 80, false, "baseline", "rule deny ingress[0]"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e, err := New(pods(), c.policies)
			if err != nil {
				t.Fatal(err)
			}
			end := func(s string) Endpoint {
				if ep, ok := e.Container(s); ok {
					return ep
				}
				if a, err := netip.ParseAddr(s); err == nil {
					if ep := e.Address(a); ep.Name != "" {
						return ep
					}
				}
				return ext(s)
			}
			v := e.Verdict(end(c.src), end(c.dst), c.proto, c.port)
			if v.Allowed != c.allowed || describe(v.Egress) != c.egress || describe(v.Ingress) != c.ingress {
				t.Fatalf("verdict %v, egress %q, ingress %q; want %v, %q, %q", v.Allowed, describe(v.Egress), describe(v.Ingress), c.allowed, c.egress, c.ingress)
			}
		})
	}
}

func describe(d Decision) string {
	return strings.TrimSpace(strings.Join([]string{d.Reason, d.Policy, d.RuleField()}, " "))
}

// Absent (nil) and present-but-empty ([]) differ, per direction.
func TestAbsentVersusEmpty(t *testing.T) {
	for _, c := range []struct {
		name             string
		ingress, egress  []openapi.PolicyRule
		inAllowed, outOK bool
	}{
		{"both absent", nil, nil, true, true},
		{"ingress []", []openapi.PolicyRule{}, nil, false, true},
		{"egress []", nil, []openapi.PolicyRule{}, true, false},
		{"both []", []openapi.PolicyRule{}, []openapi.PolicyRule{}, false, false},
	} {
		e, err := New(pods(), []openapi.Policy{pol("p", "ns=x,pod=a", "", 0, c.ingress, c.egress)})
		if err != nil {
			t.Fatal(err)
		}
		xa, _ := e.Container("x-a")
		yb, _ := e.Container("y-b")
		if got := e.Verdict(yb, xa, "TCP", 80).Allowed; got != c.inAllowed {
			t.Errorf("%s: into x-a allowed=%v, want %v", c.name, got, c.inAllowed)
		}
		if got := e.Verdict(xa, yb, "TCP", 80).Allowed; got != c.outOK {
			t.Errorf("%s: out of x-a allowed=%v, want %v", c.name, got, c.outOK)
		}
	}
}

// A stored policy New cannot read is an error naming it and the field.
func TestNewRefusesUnreadablePolicies(t *testing.T) {
	bad := pol("broken", "", "", 0, rules(from(cidr("not-a-cidr"))), nil)
	if _, err := New(pods(), []openapi.Policy{bad}); err == nil || !strings.Contains(err.Error(), "broken") || !strings.Contains(err.Error(), "ingress[0].peers[0].cidr") {
		t.Fatalf("error %v", err)
	}
}

func TestMatrixOfAndString(t *testing.T) {
	e, err := New(pods(), []openapi.Policy{pol("in", "pod=a", "", 0, rules(from(sel("pod=b"))), nil)})
	if err != nil {
		t.Fatal(err)
	}
	m := e.MatrixOf(func(c Container) bool { return c.Labels["ns"] == "x" }, "TCP", 80)
	want := "-\tx-a\tx-b\tx-c\nx-a\tX\tX\tX\nx-b\tX\tX\tX\nx-c\t.\tX\tX\n"
	if m.String() != want {
		t.Fatalf("matrix:\n%s\nwant:\n%s", m, want)
	}
}

// Endpoints built by hand (not from Container or Address) are judged by
// their labels, also by an evaluator without containers.
func TestHandBuiltEndpoints(t *testing.T) {
	e, err := New(nil, []openapi.Policy{pol("in", "app=db", "", 0, rules(from(sel("app=web"))), nil)})
	if err != nil {
		t.Fatal(err)
	}
	web := Endpoint{Name: "web", IP: netip.MustParseAddr("10.0.0.1"), Labels: map[string]string{"app": "web"}}
	db := Endpoint{Name: "db", IP: netip.MustParseAddr("10.0.0.2"), Labels: map[string]string{"app": "db"}}
	other := Endpoint{Name: "other", IP: netip.MustParseAddr("10.0.0.3")}
	if v := e.Verdict(web, db, "TCP", 5432); !v.Allowed || v.Ingress.RuleField() != "ingress[0]" {
		t.Fatalf("web -> db: %+v", v)
	}
	if v := e.Verdict(other, db, "TCP", 5432); v.Allowed || v.Ingress.Reason != ReasonIsolated {
		t.Fatalf("other -> db: %+v", v)
	}
	if m := e.Matrix("TCP", 80); len(m.Names) != 0 || len(m.Cells) != 0 {
		t.Fatalf("empty matrix: %+v", m)
	}
}
