package soak

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// What a host's flow table must be, from its program: the pure part of the
// flow invariant (check.go runs the OVS tools). The agent installs every
// flow and group of the program with ${port:NAME} replaced by the port's
// ofport and the cookie's top 16 bits set to its flow generation
// (docs/ARCHITECTURE.md, cookie layout); flows OVS learns (cookie
// openapi.LearnedCookie) are no program's.

var (
	portRef  = regexp.MustCompile(`\$\{port:([^}]*)\}`)
	cookieRE = regexp.MustCompile(`cookie=0x([0-9a-f]+)`)
	groupID  = regexp.MustCompile(`group_id=(\d+)`)
)

// substitutePorts replaces every ${port:NAME} in s with NAME's ofport; it
// fails naming a port that has none.
func substitutePorts(s string, ofports map[string]int) (string, error) {
	var missing []string
	out := portRef.ReplaceAllStringFunc(s, func(m string) string {
		name := portRef.FindStringSubmatch(m)[1]
		if n := ofports[name]; n > 0 {
			return strconv.Itoa(n)
		}
		missing = append(missing, name)
		return m
	})
	if len(missing) > 0 {
		return "", fmt.Errorf("port %s has no ofport", strings.Join(missing, ", "))
	}
	return out, nil
}

// parseOFPorts reads `ovs-vsctl -f csv --no-headings --columns=name,ofport
// list Interface`.
func parseOFPorts(out string) map[string]int {
	m := map[string]int{}
	for _, line := range strings.Split(out, "\n") {
		name, port, ok := strings.Cut(strings.TrimSpace(line), ",")
		if !ok {
			continue
		}
		n, err := strconv.Atoi(port)
		if err == nil {
			m[strings.Trim(name, `"`)] = n
		}
	}
	return m
}

// generationsOf returns the generations (cookie's top 16 bits) of the
// dumped flows, learned flows left out.
func generationsOf(dump string) map[uint16]int {
	g := map[uint16]int{}
	for _, line := range strings.Split(dump, "\n") {
		m := cookieRE.FindStringSubmatch(line)
		if m == nil {
			if strings.Contains(line, "actions=") {
				g[0]++ // cookie 0 is not printed
			}
			continue
		}
		c, _ := strconv.ParseUint(m[1], 16, 64)
		if c == openapi.LearnedCookie {
			continue
		}
		g[uint16(c>>48)]++
	}
	return g
}

// expectedFlows renders p's flows as the agent installs them, in
// add-flows syntax, for `ovs-ofctl diff-flows`; problems name the flows
// that cannot be (a port without ofport).
func expectedFlows(p *openapi.Program, ofports map[string]int, gen uint16) (file string, problems []string) {
	var b []byte
	for i := range p.Flows {
		f := p.Flows[i]
		var err1, err2 error
		f.Match, err1 = substitutePorts(f.Match, ofports)
		f.Actions, err2 = substitutePorts(f.Actions, ofports)
		if err1 != nil || err2 != nil {
			problems = append(problems, fmt.Sprintf("flow %s: %v", program.AppendFlow(nil, &p.Flows[i]), firstErr(err1, err2)))
			continue
		}
		f.Cookie = f.Cookie&(1<<48-1) | uint64(gen)<<48
		b = program.AppendFlow(b, &f)
		b = append(b, '\n')
	}
	return string(b), problems
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

// flowDiffs keeps the lines of `ovs-ofctl diff-flows SWITCH FILE` that are
// differences ("-": on the switch, not in the program; "+": the reverse),
// leaving out learned flows.
func flowDiffs(out string) []string {
	var d []string
	learned := fmt.Sprintf("cookie=%#x", openapi.LearnedCookie)
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		if (strings.HasPrefix(line, "-") || strings.HasPrefix(line, "+")) && !strings.Contains(line, learned) {
			d = append(d, line)
		}
	}
	return d
}

// groupIDs are the ids of `ovs-ofctl dump-groups`.
func groupIDs(dump string) []uint32 {
	var ids []uint32
	for _, m := range groupID.FindAllStringSubmatch(dump, -1) {
		n, _ := strconv.ParseUint(m[1], 10, 32)
		ids = append(ids, uint32(n))
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	return ids
}

// diffSets names what want has that have lacks ("missing") and the reverse
// ("extra"), each prefixed with what.
func diffSets[K comparable](what string, want, have []K) []string {
	w, h := map[K]bool{}, map[K]bool{}
	for _, k := range want {
		w[k] = true
	}
	for _, k := range have {
		h[k] = true
	}
	var out []string
	for _, k := range want {
		if !h[k] {
			out = append(out, fmt.Sprintf("%s: missing %v", what, k))
		}
	}
	for _, k := range have {
		if !w[k] {
			out = append(out, fmt.Sprintf("%s: extra %v (leaked)", what, k))
		}
	}
	sort.Strings(out)
	return out
}

// natPorts are the destination ports the host's NAT table names
// (`nft list table ip switchyard`).
var dportRE = regexp.MustCompile(`dport (\d+)`)

func natPorts(nft string) []int {
	seen := map[int]bool{}
	var out []int
	for _, m := range dportRE.FindAllStringSubmatch(nft, -1) {
		n, _ := strconv.Atoi(m[1])
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	sort.Ints(out)
	return out
}

// programNATPorts are the host ports the program publishes (published
// container ports and node ports).
func programNATPorts(p *openapi.Program) []int {
	seen := map[int]bool{}
	var out []int
	if p.Gateway == nil {
		return nil
	}
	for _, r := range p.Gateway.NAT {
		if r.HostPort > 0 && !seen[r.HostPort] {
			seen[r.HostPort] = true
			out = append(out, r.HostPort)
		}
	}
	sort.Ints(out)
	return out
}
