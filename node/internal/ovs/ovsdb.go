package ovs

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-logr/logr"
	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"
)

// external_ids keys on every row this package creates.
const (
	KeyOwner       = "switchyard-owner"
	OwnerValue     = "switchyard"
	KeyContainer   = "switchyard-container"
	KeyContainerID = "switchyard-container-id"
	KeyPeerHost    = "switchyard-peer-host"
	KeyGeneration  = "switchyard-generation"
)

// db is the OVSDB side: a libovsdb client whose cache mirrors the modelled
// columns, plus a channel poked on every cache change.
type db struct {
	c       client.Client
	changed chan struct{}
}

// connectDB connects and monitors; reconnected is called (on libovsdb's
// goroutine) each time the connection is re-established after a loss.
func connectDB(ctx context.Context, endpoint string, log *slog.Logger, reconnected func()) (*db, error) {
	m, err := dbModel()
	if err != nil {
		return nil, err
	}
	l := logr.Discard()
	if log != nil {
		l = logr.FromSlogHandler(log.Handler())
	}
	// Reconnect forever: libovsdb panics when its backoff gives up (the
	// default gives up after 15 minutes).
	b := backoff.NewExponentialBackOff()
	b.MaxInterval, b.MaxElapsedTime = 5*time.Second, 0
	c, err := client.NewOVSDBClient(m, client.WithEndpoint(endpoint), client.WithLogger(&l),
		client.WithReconnect(5*time.Second, b))
	if err != nil {
		return nil, err
	}
	if err := c.Connect(ctx); err != nil {
		return nil, fmt.Errorf("connect to OVSDB %s: %w", endpoint, err)
	}
	d := &db{c: c, changed: make(chan struct{}, 1)}
	poke := func() {
		select {
		case d.changed <- struct{}{}:
		default:
		}
	}
	// The Open_vSwitch row is added to the cache once per connection: the
	// first time is the initial monitor, any later one a reconnect.
	var roots atomic.Int64
	c.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc: func(table string, _ model.Model) {
			poke()
			if table == "Open_vSwitch" && roots.Add(1) > 1 && reconnected != nil {
				reconnected()
			}
		},
		UpdateFunc: func(string, model.Model, model.Model) { poke() },
		DeleteFunc: func(string, model.Model) { poke() },
	})
	if _, err := c.Monitor(ctx, c.NewMonitor(monitorOpts()...)); err != nil {
		c.Close()
		return nil, fmt.Errorf("monitor OVSDB %s: %w", endpoint, err)
	}
	return d, nil
}

// snapshot is a consistent-enough view of the cache for one plan. Its rows
// are the cache's own (libovsdb replaces a row on update, never changes
// it): READ ONLY, except root, which is a copy.
type snapshot struct {
	root    *rootRow
	bridges map[string]*bridgeRow // by name
	ports   map[string]*portRow   // by uuid
	ifaces  map[string]*ifaceRow  // by uuid
	// portBridge maps a port uuid to the name of the bridge holding it.
	portBridge map[string]string
}

// rows returns the cache's rows of table by uuid, not copied
// (RowsShallow): READ ONLY. None when not connected.
func (d *db) rows(table string) map[string]model.Model {
	if tc := d.c.Cache(); tc != nil {
		if t := tc.Table(table); t != nil {
			return t.RowsShallow()
		}
	}
	return nil
}

// snapshot reads the cache without copying its rows (rows): a
// deep copy of every port and interface cost the agent about a third of
// its CPU per container at 200 ports (docs/benchmarks-convergence.md,
// tenth pass).
func (d *db) snapshot(ctx context.Context) (*snapshot, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if d.c.Cache() == nil {
		return nil, errors.New("read OVSDB cache: not connected")
	}
	roots := d.rows("Open_vSwitch")
	if len(roots) != 1 {
		return nil, fmt.Errorf("OVSDB has %d Open_vSwitch rows, want 1 (run ovs-vsctl init)", len(roots))
	}
	s := &snapshot{bridges: map[string]*bridgeRow{}, ports: map[string]*portRow{},
		ifaces: map[string]*ifaceRow{}, portBridge: map[string]string{}}
	for _, r := range roots {
		s.root = model.Clone(r).(*rootRow)
	}
	for _, r := range d.rows("Bridge") {
		b := r.(*bridgeRow)
		s.bridges[b.Name] = b
		for _, p := range b.Ports {
			s.portBridge[p] = b.Name
		}
	}
	for u, r := range d.rows("Port") {
		s.ports[u] = r.(*portRow)
	}
	for u, r := range d.rows("Interface") {
		s.ifaces[u] = r.(*ifaceRow)
	}
	return s, nil
}

// bridgePorts returns the ports of bridge by name, with their first interface.
func (s *snapshot) bridgePorts(b *bridgeRow) map[string]portIface {
	out := map[string]portIface{}
	if b == nil {
		return out
	}
	for _, pu := range b.Ports {
		p := s.ports[pu]
		if p == nil {
			continue
		}
		pi := portIface{port: p}
		if len(p.Interfaces) > 0 {
			pi.iface = s.ifaces[p.Interfaces[0]]
		}
		out[p.Name] = pi
	}
	return out
}

// portByName finds a port on any bridge.
func (s *snapshot) portByName(name string) *portRow {
	for _, p := range s.ports {
		if p.Name == name {
			return p
		}
	}
	return nil
}

type portIface struct {
	port  *portRow
	iface *ifaceRow
}

// portSpec is one port this package wants on a bridge.
type portSpec struct {
	Name    string
	Type    string // "", "internal", "geneve", "vxlan"
	Options map[string]string
	IDs     map[string]string // external_ids
	// OFPortRequest, when set, is asked of OVS for a new interface.
	OFPortRequest int
}

func owned(ids map[string]string) bool { return ids[KeyOwner] == OwnerValue }

// bridgeSpec is the desired configuration of one bridge.
type bridgeSpec struct {
	Name         string
	DatapathType string
	IDs          map[string]string // external_ids keys we set (others kept)
	// Prune removes owned ports not in Ports.
	Prune bool
	Ports []portSpec
}

// planner accumulates the operations of one transaction.
type planner struct {
	d     *db
	s     *snapshot
	ops   []ovsdb.Operation
	fails map[string]error // port name -> why it cannot be placed
	n     int
	// ofports, when set, picks the ofport_request of container ports
	// added to an existing bridge; requested records them by name.
	ofports   *ofportAlloc
	requested map[string]int
	// reuse gives a port the ofport an earlier plan requested for it
	// (its flows name it already).
	reuse map[string]int
}

func newPlanner(d *db, s *snapshot) *planner {
	return &planner{d: d, s: s, fails: map[string]error{}}
}

func (pl *planner) add(ops []ovsdb.Operation, err error) error {
	if err != nil {
		return err
	}
	pl.ops = append(pl.ops, ops...)
	return nil
}

func (pl *planner) named(prefix string) string {
	pl.n++
	return prefix + strconv.Itoa(pl.n)
}

var protocols = []string{"OpenFlow13", "OpenFlow14", "OpenFlow15"}

// planBridge adds the operations converging one bridge and its ports.
func (pl *planner) planBridge(spec bridgeSpec) error {
	b := pl.s.bridges[spec.Name]
	local := portSpec{Name: spec.Name, Type: "internal", IDs: map[string]string{KeyOwner: OwnerValue}}
	secure := "secure"
	want := bridgeRow{
		Name: spec.Name, DatapathType: spec.DatapathType, FailMode: &secure, Protocols: protocols,
		OtherConfig: map[string]string{"disable-in-band": "true"},
		ExternalIDs: spec.IDs,
	}
	if b == nil {
		var uuids []string
		for _, ps := range append([]portSpec{local}, spec.Ports...) {
			if other := pl.s.portByName(ps.Name); other != nil {
				pl.fails[ps.Name] = fmt.Errorf("port %s already exists on bridge %s", ps.Name, pl.s.portBridge[other.UUID])
				continue
			}
			u, err := pl.createPort(ps)
			if err != nil {
				return err
			}
			uuids = append(uuids, u)
		}
		want.UUID = pl.named("bridge")
		want.Ports = uuids
		if err := pl.add(pl.d.c.Create(&want)); err != nil {
			return err
		}
		root := &rootRow{UUID: pl.s.root.UUID}
		return pl.add(pl.d.c.Where(root).Mutate(root, model.Mutation{
			Field: &root.Bridges, Mutator: ovsdb.MutateOperationInsert, Value: []string{want.UUID}}))
	}
	if err := pl.updateBridge(b, want); err != nil {
		return err
	}
	have := pl.s.bridgePorts(b)
	wanted := map[string]bool{}
	var insert, remove []string
	for _, ps := range append([]portSpec{local}, spec.Ports...) {
		wanted[ps.Name] = true
		if cur, ok := have[ps.Name]; ok {
			if err := pl.updatePort(cur, ps); err != nil {
				return err
			}
			continue
		}
		if other := pl.s.portByName(ps.Name); other != nil {
			// On another bridge: move it only if it is ours.
			if !owned(other.ExternalIDs) {
				pl.fails[ps.Name] = fmt.Errorf("port %s exists on bridge %s and is not ours", ps.Name, pl.s.portBridge[other.UUID])
				continue
			}
			ob := pl.s.bridges[pl.s.portBridge[other.UUID]]
			if err := pl.mutatePorts(ob, ovsdb.MutateOperationDelete, []string{other.UUID}); err != nil {
				return err
			}
			pi := portIface{port: other}
			if len(other.Interfaces) > 0 {
				pi.iface = pl.s.ifaces[other.Interfaces[0]]
			}
			if err := pl.updatePort(pi, ps); err != nil {
				return err
			}
			insert = append(insert, other.UUID)
			continue
		}
		if pl.ofports != nil && ps.Type == "" {
			n := pl.reuse[ps.Name]
			if n == 0 {
				n = pl.ofports.next(pl.s)
			}
			ps.OFPortRequest = n
			if pl.requested == nil {
				pl.requested = map[string]int{}
			}
			pl.requested[ps.Name] = n
		}
		u, err := pl.createPort(ps)
		if err != nil {
			return err
		}
		insert = append(insert, u)
	}
	if spec.Prune {
		for name, cur := range have {
			if !wanted[name] && owned(cur.port.ExternalIDs) {
				remove = append(remove, cur.port.UUID)
			}
		}
	}
	slices.Sort(remove)
	if err := pl.mutatePorts(b, ovsdb.MutateOperationDelete, remove); err != nil {
		return err
	}
	return pl.mutatePorts(b, ovsdb.MutateOperationInsert, insert)
}

func (pl *planner) mutatePorts(b *bridgeRow, op ovsdb.Mutator, uuids []string) error {
	if len(uuids) == 0 || b == nil {
		return nil
	}
	br := &bridgeRow{UUID: b.UUID}
	return pl.add(pl.d.c.Where(br).Mutate(br, model.Mutation{Field: &br.Ports, Mutator: op, Value: uuids}))
}

// updateBridge updates the columns of an existing bridge that differ; in
// maps only the keys we set are compared, other keys are kept.
func (pl *planner) updateBridge(b *bridgeRow, want bridgeRow) error {
	up := &bridgeRow{UUID: b.UUID}
	var fields []any
	if b.DatapathType != want.DatapathType {
		up.DatapathType = want.DatapathType
		fields = append(fields, &up.DatapathType)
	}
	if b.FailMode == nil || *b.FailMode != *want.FailMode {
		up.FailMode = want.FailMode
		fields = append(fields, &up.FailMode)
	}
	if !sameSet(b.Protocols, want.Protocols) {
		up.Protocols = want.Protocols
		fields = append(fields, &up.Protocols)
	}
	if m, ok := merged(b.OtherConfig, want.OtherConfig); !ok {
		up.OtherConfig = m
		fields = append(fields, &up.OtherConfig)
	}
	if m, ok := merged(b.ExternalIDs, want.ExternalIDs); !ok {
		up.ExternalIDs = m
		fields = append(fields, &up.ExternalIDs)
	}
	if len(fields) == 0 {
		return nil
	}
	return pl.add(pl.d.c.Where(up).Update(up, fields...))
}

// createPort adds the insert operations of a port and its interface and
// returns the port's named uuid.
func (pl *planner) createPort(ps portSpec) (string, error) {
	iface := &ifaceRow{UUID: pl.named("iface"), Name: ps.Name, Type: ps.Type, Options: ps.Options, ExternalIDs: ps.IDs}
	if ps.OFPortRequest > 0 {
		iface.OFPortRequest = &ps.OFPortRequest
	}
	port := &portRow{UUID: pl.named("port"), Name: ps.Name, Interfaces: []string{iface.UUID}, ExternalIDs: ps.IDs}
	if err := pl.add(pl.d.c.Create(iface, port)); err != nil {
		return "", err
	}
	return port.UUID, nil
}

// updatePort converges an existing port and its interface to ps.
func (pl *planner) updatePort(cur portIface, ps portSpec) error {
	if cur.iface == nil {
		pl.fails[ps.Name] = fmt.Errorf("port %s has no interface", ps.Name)
		return nil
	}
	if m, ok := merged(cur.port.ExternalIDs, ps.IDs); !ok {
		up := &portRow{UUID: cur.port.UUID, ExternalIDs: m}
		if err := pl.add(pl.d.c.Where(up).Update(up, &up.ExternalIDs)); err != nil {
			return err
		}
	}
	up := &ifaceRow{UUID: cur.iface.UUID}
	var fields []any
	if normType(cur.iface.Type) != normType(ps.Type) {
		up.Type = ps.Type
		fields = append(fields, &up.Type)
	}
	if !maps.Equal(cur.iface.Options, ps.Options) && (len(cur.iface.Options) > 0 || len(ps.Options) > 0) {
		up.Options = ps.Options
		if up.Options == nil {
			up.Options = map[string]string{}
		}
		fields = append(fields, &up.Options)
	}
	if m, ok := merged(cur.iface.ExternalIDs, ps.IDs); !ok {
		up.ExternalIDs = m
		fields = append(fields, &up.ExternalIDs)
	}
	if len(fields) == 0 {
		return nil
	}
	return pl.add(pl.d.c.Where(up).Update(up, fields...))
}

func normType(t string) string {
	if t == "system" {
		return ""
	}
	return t
}

// merged returns have with want's keys set, and whether have already had them.
func merged(have, want map[string]string) (map[string]string, bool) {
	ok := true
	for k, v := range want {
		if hv, found := have[k]; !found || hv != v {
			ok = false
		}
	}
	if ok {
		return have, true
	}
	m := maps.Clone(have)
	if m == nil {
		m = map[string]string{}
	}
	maps.Copy(m, want)
	return m, false
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// transact runs ops as one transaction and checks every operation's result.
func (d *db) transact(ctx context.Context, ops []ovsdb.Operation) error {
	_, err := d.transactResults(ctx, ops)
	return err
}

// transactResults is transact returning the operations' results.
func (d *db) transactResults(ctx context.Context, ops []ovsdb.Operation) ([]ovsdb.OperationResult, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	res, err := d.c.Transact(ctx, ops...)
	if err != nil {
		return nil, fmt.Errorf("OVSDB transaction: %w", err)
	}
	opErrs, err := ovsdb.CheckOperationResults(res, ops)
	if err != nil {
		msgs := []string{err.Error()}
		for _, e := range opErrs {
			msgs = append(msgs, fmt.Sprintf("%s on %s: %v", e.Operation().Op, e.Operation().Table, e))
		}
		return nil, fmt.Errorf("OVSDB transaction: %s", strings.Join(msgs, "; "))
	}
	return res, nil
}

// portState is what OVS reports about an interface.
type portState struct {
	OFPort int
	Error  string
	Up     bool
}

// waitPorts waits until OVS has given every named interface an ofport (or
// an error), at most until ctx ends, and returns their state. Interfaces
// still unassigned at the deadline are reported with an error. A fresh
// interface (its device was just created) in error is waited for too: OVS
// retries opening it when the device appears.
func (d *db) waitPorts(ctx context.Context, names []string, fresh map[string]bool) map[string]portState {
	out := map[string]portState{}
	for {
		pending := d.readPorts(ctx, names, fresh, out)
		if pending == 0 {
			return out
		}
		select {
		case <-ctx.Done():
			for _, n := range names {
				if st := out[n]; st.OFPort == 0 && st.Error == "" {
					out[n] = portState{Error: "OVS assigned no ofport in time"}
				}
			}
			return out
		case <-d.changed:
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// readPorts fills out from the cache and returns how many are unassigned.
func (d *db) readPorts(ctx context.Context, names []string, fresh map[string]bool, out map[string]portState) int {
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	// The cache's rows, READ ONLY and not copied (see rows): a WhereCache
	// predicate would copy every interface to test it.
	byName := map[string]*ifaceRow{}
	if ctx.Err() == nil {
		for _, r := range d.rows("Interface") {
			if i := r.(*ifaceRow); want[i.Name] {
				byName[i.Name] = i
			}
		}
	}
	pending := 0
	for _, n := range names {
		st := portState{}
		if i := byName[n]; i != nil {
			if i.OFPort != nil {
				st.OFPort = *i.OFPort
			}
			if i.Error != nil {
				st.Error = *i.Error
			}
			st.Up = i.LinkState != nil && *i.LinkState == "up"
		}
		if st.OFPort < 0 && st.Error == "" {
			st.Error = "OVS could not open the port"
		}
		if (st.OFPort == 0 && st.Error == "") || (fresh[n] && st.OFPort <= 0) {
			pending++
		}
		out[n] = st
	}
	return pending
}
