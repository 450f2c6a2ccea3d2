package ovs

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/openapi"
)

// CookieOwnerMask is the part of a flow cookie the compiler owns; the top 16
// bits carry the agent's generation.
const CookieOwnerMask = 1<<48 - 1

// Cookie returns the cookie a flow is installed with.
func Cookie(owner uint64, gen uint16) uint64 {
	return owner&CookieOwnerMask | uint64(gen)<<48
}

var (
	groupRef = regexp.MustCompile(`\bgroup:(\d+)`)
)

// Dropped is a flow or group left out of an apply, and why.
type Dropped struct {
	// Flow is set for a dropped flow, Group for a dropped group.
	Flow   *openapi.Flow  `json:"flow,omitempty"`
	Group  *openapi.Group `json:"group,omitempty"`
	Reason string         `json:"reason"`
}

func (d Dropped) String() string {
	if d.Group != nil {
		return fmt.Sprintf("group %d: %s", d.Group.ID, d.Reason)
	}
	f := d.Flow
	return fmt.Sprintf("flow table=%d,priority=%d,%s: %s", f.Table, f.Priority, f.Match, d.Reason)
}

// flowTable is a set of resolved flows: key (table, priority, match) ->
// full ovs-ofctl text including cookie and actions, plus their order.
type flowTable struct {
	// keys is the program's order of the keys, or nil once the table was
	// patched by a delta (orderedKeys then sorts them).
	keys  []string
	lines map[string]string
	src   map[string]*openapi.Flow // the program's flow behind each key
}

// orderedKeys returns the keys in the program's order, or sorted when the
// table was patched since it was resolved.
func (t flowTable) orderedKeys() []string {
	if t.keys != nil {
		return t.keys
	}
	return slices.Sorted(maps.Keys(t.lines))
}

// file renders the table, in orderedKeys order, for replace-flows and
// parse-flows.
func (t flowTable) file(keys []string) string {
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(t.lines[k])
		b.WriteByte('\n')
	}
	return b.String()
}

// groupTable maps a group id to its full spec ("group_id=N,...").
type groupTable map[uint32]string

// resolver substitutes ${port:NAME} with ofports.
type resolver struct {
	ofports map[string]int    // usable ports
	failed  map[string]string // program ports that failed, with why
	// off are agent ports switched off by configuration (the DNS port
	// when the resolver is off): flows naming them are left out, as
	// intended, not dropped as a failure.
	off map[string]bool
}

// errPortOff reports a flow or group that names a port switched off.
var errPortOff = errors.New("names a port that is switched off")

const portRefOpen = "${port:"

// substitute replaces every ${port:NAME} in s with NAME's ofport. It scans
// by hand: it runs for every match and action of every flow on every apply.
func (r resolver) substitute(s string) (string, error) {
	i := strings.Index(s, portRefOpen)
	if i < 0 {
		return s, nil
	}
	var b strings.Builder
	b.Grow(len(s))
	for i >= 0 {
		b.WriteString(s[:i])
		s = s[i+len(portRefOpen):]
		end := strings.IndexByte(s, '}')
		if end < 0 {
			return "", fmt.Errorf("unterminated %s", portRefOpen)
		}
		name := s[:end]
		s = s[end+1:]
		n, ok := r.ofports[name]
		switch {
		case ok && n > 0:
			b.WriteString(strconv.Itoa(n))
		case r.failed[name] != "":
			return "", fmt.Errorf("port %s failed: %s", name, r.failed[name])
		case r.off[name]:
			return "", errPortOff
		default:
			return "", fmt.Errorf("port %s is not in the program", name)
		}
		i = strings.Index(s, portRefOpen)
	}
	b.WriteString(s)
	return b.String(), nil
}

// resolve turns the program's flows and groups into what gets installed,
// dropping (and reporting) those that name a failed or unknown port, a
// dropped group, or repeat another flow's table, priority and match.
func resolve(flows []openapi.Flow, groups []openapi.Group, r resolver, gen uint16) (flowTable, groupTable, []Dropped) {
	var dropped []Dropped
	gt := groupTable{}
	for i := range groups {
		g := &groups[i]
		spec, err := r.substitute(g.Spec)
		if err == nil && strings.Contains(spec, "group_id=") {
			err = fmt.Errorf("spec must not contain group_id")
		}
		if err == nil {
			if _, dup := gt[g.ID]; dup {
				err = fmt.Errorf("duplicate group id")
			}
		}
		if errors.Is(err, errPortOff) {
			continue
		}
		if err != nil {
			dropped = append(dropped, Dropped{Group: g, Reason: err.Error()})
			continue
		}
		gt[g.ID] = fmt.Sprintf("group_id=%d,%s", g.ID, spec)
	}
	ft := flowTable{lines: map[string]string{}, src: map[string]*openapi.Flow{}}
	for i := range flows {
		f := &flows[i]
		line, key, err := renderFlow(f, r, gen, gt)
		if err == nil {
			if _, dup := ft.lines[key]; dup {
				err = fmt.Errorf("duplicate of an earlier flow with the same table, priority and match")
			}
		}
		if errors.Is(err, errPortOff) {
			continue
		}
		if err != nil {
			dropped = append(dropped, Dropped{Flow: f, Reason: err.Error()})
			continue
		}
		ft.keys = append(ft.keys, key)
		ft.lines[key] = line
		ft.src[key] = f
	}
	return ft, gt, dropped
}

func renderFlow(f *openapi.Flow, r resolver, gen uint16, gt groupTable) (line, key string, err error) {
	if f.Table < 0 || f.Table > 254 {
		return "", "", fmt.Errorf("table %d out of range", f.Table)
	}
	if f.Priority < 0 || f.Priority > 65535 {
		return "", "", fmt.Errorf("priority %d out of range", f.Priority)
	}
	if strings.TrimSpace(f.Actions) == "" {
		return "", "", fmt.Errorf("no actions")
	}
	if strings.ContainsAny(f.Match+f.Actions, "\n\r") {
		return "", "", fmt.Errorf("newline in flow")
	}
	match, err := r.substitute(strings.TrimSpace(f.Match))
	if err != nil {
		return "", "", err
	}
	actions, err := r.substitute(strings.TrimSpace(f.Actions))
	if err != nil {
		return "", "", err
	}
	if strings.Contains(actions, "group:") {
		for _, m := range groupRef.FindAllStringSubmatch(actions, -1) {
			id, _ := strconv.ParseUint(m[1], 10, 32)
			if _, ok := gt[uint32(id)]; !ok {
				return "", "", fmt.Errorf("group %d is not installed", id)
			}
		}
	}
	key = fmt.Sprintf("table=%d, priority=%d", f.Table, f.Priority)
	head := fmt.Sprintf("%s, cookie=%#x", key, Cookie(f.Cookie, gen))
	if match != "" {
		key += ", " + match
		return fmt.Sprintf("%s, %s actions=%s", head, match, actions), key, nil
	}
	return fmt.Sprintf("%s actions=%s", head, actions), key, nil
}

// delta is the bundle that turns the installed tables into the desired ones.
type delta struct {
	lines                                []string
	flowAdds, flowDels, groupSets, gDels int
	// delKeys and addKeys are the flows deleted and added, setIDs and
	// delIDs the groups added or modified (modified says which) and
	// deleted (for the native bundle, ofbundle.go).
	delKeys, addKeys []string
	setIDs, delIDs   []uint32
	modified         map[uint32]bool
}

func (d delta) empty() bool { return len(d.lines) == 0 }

// diff computes the `ovs-ofctl bundle` file turning (oldF, oldG) into
// (newF, newG): groups first (so flows can use them), deletions of flows
// before additions (so two spellings of one match end up installed), and
// stale groups last (deleting a group deletes the flows that use it).
func diff(oldF, newF flowTable, oldG, newG groupTable) delta {
	var d delta
	for _, id := range sortedIDs(newG) {
		switch old, ok := oldG[id]; {
		case !ok:
			d.lines = append(d.lines, "group add "+newG[id])
			d.setIDs = append(d.setIDs, id)
			d.groupSets++
		case old != newG[id]:
			d.lines = append(d.lines, "group modify "+newG[id])
			d.setIDs = append(d.setIDs, id)
			if d.modified == nil {
				d.modified = map[uint32]bool{}
			}
			d.modified[id] = true
			d.groupSets++
		}
	}
	for _, k := range oldF.orderedKeys() {
		if _, ok := newF.lines[k]; !ok {
			d.lines = append(d.lines, "flow delete_strict "+k)
			d.delKeys = append(d.delKeys, k)
			d.flowDels++
		}
	}
	for _, k := range newF.orderedKeys() {
		if oldF.lines[k] != newF.lines[k] {
			d.lines = append(d.lines, "flow add "+newF.lines[k])
			d.addKeys = append(d.addKeys, k)
			d.flowAdds++
		}
	}
	for _, id := range sortedIDs(oldG) {
		if _, ok := newG[id]; !ok {
			d.lines = append(d.lines, fmt.Sprintf("group delete group_id=%d", id))
			d.delIDs = append(d.delIDs, id)
			d.gDels++
		}
	}
	return d
}

func sortedIDs(g groupTable) []uint32 {
	ids := make([]uint32, 0, len(g))
	for id := range g {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}
