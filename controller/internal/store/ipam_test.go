package store

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// fill inserts containers straight into network (on host h1) at offsets
// to, to-step, ... down to from, except the gateway and skip: a quick way to
// a full or fragmented pool. The free lists follow through their triggers;
// from the top down, each takes the end of an interval, which one bulk
// transaction does in linear time (from the bottom up, the row versions it
// leaves behind would make it quadratic; one allocation per write does not).
func fill(t testing.TB, st *Store, network string, from, to, step int64, skip ...int64) {
	t.Helper()
	if skip == nil {
		skip = []int64{}
	}
	// Addresses and MACs as CreateContainer makes them (macFor).
	if _, err := st.Pool.Exec(context.Background(), `INSERT INTO containers (name, network_id, host_id, ip, ip_offset, mac, revision)
		SELECT 'fill-' || g, n.id, h.id, host(n.cidr::inet + g)::inet, g,
		       lpad(to_hex(x'0a5800000000'::bigint + ((n.cidr::inet + g) - '0.0.0.0'::inet)), 12, '0')::macaddr, 1
		FROM networks n, hosts h, generate_series($3::bigint, $2::bigint, -$4::bigint) g
		WHERE n.name = $1 AND h.name = 'h1' AND g <> (n.gateway - n.cidr::inet) AND g <> ALL($5::bigint[])`,
		network, from, to, step, skip); err != nil {
		t.Fatal(err)
	}
}

// fillServices inserts services straight into the service range at
// addresses first+from..first+to, except skip.
func fillServices(t testing.TB, st *Store, network string, from, to int64, skip ...int64) {
	t.Helper()
	if skip == nil {
		skip = []int64{}
	}
	if _, err := st.Pool.Exec(context.Background(), `INSERT INTO services (name, network_id, vip, ports, revision)
		SELECT 'fill-' || g, n.id, $2::inet + g, '[{"port":80,"protocol":"TCP"}]', 1
		FROM networks n, generate_series($4::bigint, $3::bigint, -1) g WHERE n.name = $1 AND g <> ALL($5::bigint[])`,
		network, st.opts.ServiceCIDR.Addr().String(), from, to, skip); err != nil {
		t.Fatal(err)
	}
}

func createContainer(t testing.TB, st *Store, network, name string) (openapi.Container, error) {
	t.Helper()
	return st.CreateContainer(context.Background(), "test", openapi.Container{Name: name, Network: network, Host: "h1"})
}

var exhausted = problem.Exhausted("", "").Status

func wantStatus(t testing.TB, err error, status int) {
	t.Helper()
	pe, ok := problem.As(err)
	if !ok || pe.Status != status {
		t.Fatalf("got %v, want a %d problem", err, status)
	}
}

func TestAllocateVNI(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	mkNetwork(t, st, "top", "10.1.0.0/24", MaxVNI)
	mkNetwork(t, st, "two", "10.2.0.0/24", 2)
	for _, c := range []struct {
		name string
		want int64
	}{{"a", 1}, {"b", 3}, {"c", 4}} {
		if n := mkNetwork(t, st, c.name, fmt.Sprintf("10.3.%d.0/24", c.want), 0); n.VNI != c.want {
			t.Fatalf("network %s got VNI %d, want %d", c.name, n.VNI, c.want)
		}
	}
	if _, err := st.DeleteNetwork(ctx, "test", "two", 0); err != nil {
		t.Fatal(err)
	}
	if n := mkNetwork(t, st, "d", "10.4.0.0/24", 0); n.VNI != 2 {
		t.Fatalf("a released VNI is not reused: got %d, want 2", n.VNI)
	}
	_, err := st.CreateNetwork(ctx, "test", openapi.Network{Name: "dup", CIDR: "10.5.0.0/24", VNI: MaxVNI})
	wantStatus(t, err, 409)
}

func TestAllocateAddressNearlyFull(t *testing.T) {
	st, _ := newStore(t, Options{})
	mkHost(t, st, "h1", "192.0.2.1")
	mkNetwork(t, st, "n", "10.1.0.0/24", 0) // gateway .1, offsets 2-254 usable
	fill(t, st, "n", 2, 254, 1, 100)
	c, err := createContainer(t, st, "n", "last")
	if err != nil {
		t.Fatal(err)
	}
	if c.IP != "10.1.0.100" || c.MAC != "0a:58:0a:01:00:64" {
		t.Fatalf("got %s %s, want the one free address 10.1.0.100", c.IP, c.MAC)
	}
	_, err = createContainer(t, st, "n", "one-too-many")
	wantStatus(t, err, exhausted)
	if _, err := st.DeleteContainer(context.Background(), "test", "fill-7", "n", 0); err != nil {
		t.Fatal(err)
	}
	if c, err := createContainer(t, st, "n", "again"); err != nil || c.IP != "10.1.0.7" {
		t.Fatalf("got %s, %v; want the released 10.1.0.7", c.IP, err)
	}
}

func TestAllocateAddressFragmented(t *testing.T) {
	st, _ := newStore(t, Options{})
	mkHost(t, st, "h1", "192.0.2.1")
	mkNetwork(t, st, "n", "10.1.0.0/24", 0)
	fill(t, st, "n", 2, 254, 2) // every even offset
	// Next fit from the cursor (0: the start), then onwards.
	for _, want := range []string{"10.1.0.3", "10.1.0.5", "10.1.0.7"} {
		c, err := createContainer(t, st, "n", "c"+want[len(want)-1:])
		if err != nil || c.IP != want {
			t.Fatalf("got %s, %v; want %s", c.IP, err, want)
		}
	}
	c, err := st.CreateContainer(context.Background(), "test", openapi.Container{Name: "fixed", Network: "n", Host: "h1", IP: "10.1.0.201"})
	if err != nil || c.IP != "10.1.0.201" {
		t.Fatalf("got %s, %v; want the asked 10.1.0.201", c.IP, err)
	}
	_, err = st.CreateContainer(context.Background(), "test", openapi.Container{Name: "taken", Network: "n", Host: "h1", IP: "10.1.0.200"})
	wantStatus(t, err, 409)
	checkFreeList(t, st, "n")
}

func TestAllocateVIP(t *testing.T) {
	st, _ := newStore(t, Options{ServiceCIDR: netip.MustParsePrefix("10.96.0.0/24")})
	mkNetwork(t, st, "n", "10.1.0.0/24", 0)
	fillServices(t, st, "n", 1, 254, 254) // all but the top usable address
	svc := openapi.Service{Name: "s", Network: "n", Ports: []openapi.ServicePort{{Port: 80}}}
	v, err := st.CreateService(context.Background(), "test", svc)
	if err != nil || v.VIP != "10.96.0.254" {
		t.Fatalf("got %s, %v; want 10.96.0.254", v.VIP, err)
	}
	svc.Name = "t"
	_, err = st.CreateService(context.Background(), "test", svc)
	wantStatus(t, err, exhausted)
}

// checkFreeList compares network's free list with the complement of its
// containers' offsets.
func checkFreeList(t testing.TB, st *Store, network string) {
	t.Helper()
	var diff int64
	if err := st.Pool.QueryRow(context.Background(), `WITH n AS (SELECT id, cidr, gateway FROM networks WHERE name = $1),
		free AS (SELECT g FROM n, ipam_free f, generate_series(f.lo, f.hi) g WHERE f.pool = n.id::text),
		want AS (SELECT g FROM n, generate_series(1, (1::bigint << (32 - masklen(n.cidr))) - 2) g
		         WHERE g <> n.gateway - n.cidr::inet AND NOT EXISTS (SELECT 1 FROM containers c WHERE c.network_id = n.id AND c.ip_offset = g))
		SELECT (SELECT count(*) FROM (SELECT g FROM free EXCEPT SELECT g FROM want) x)
		     + (SELECT count(*) FROM (SELECT g FROM want EXCEPT SELECT g FROM free) y)`, network).Scan(&diff); err != nil {
		t.Fatal(err)
	}
	if diff != 0 {
		t.Fatalf("the free list of %s differs from its containers in %d offsets", network, diff)
	}
}

// The allocation query reads a handful of rows whatever is in use: a VNI at
// the top of the range, a nearly full pool, a fragmented one, a crowded
// service range. Measured on the plan, not the clock: the sum of rows every
// plan node produced, and of rows it read and threw away.
func TestAllocationQueryShape(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	mkHost(t, st, "h1", "192.0.2.1")
	top := mkNetwork(t, st, "top", "10.1.0.0/16", MaxVNI)
	full := mkNetwork(t, st, "full", "10.2.0.0/16", 0)
	frag := mkNetwork(t, st, "frag", "10.3.0.0/16", 0)
	fill(t, st, "full", 2, 65534, 1, 3)
	fill(t, st, "frag", 2, 65534, 2)
	fillServices(t, st, "top", 1, 65000)
	// The bulk fills above leave dead row versions that a running system's
	// autovacuum removes; measure that steady state.
	if _, err := st.Pool.Exec(ctx, `VACUUM ANALYZE ipam_free`); err != nil {
		t.Fatal(err)
	}
	vip := addrOffset(ipv4All, st.opts.ServiceCIDR.Addr())
	for _, c := range []struct {
		name string
		pool string
		from int64
		want int64
	}{
		{"vni next to the top", poolVNI, 1, 3}, // 1 and 2 went to full and frag
		{"vni above the top", poolVNI, MaxVNI, -1},
		{"nearly full from its start", full.ID, 1, 3},
		{"nearly full past its hole", full.ID, 4, -1},
		{"fragmented", frag.ID, 30001, 30001},
		{"fragmented on a used one", frag.ID, 30000, 30001},
		{"vip range crowded", poolVIP, vip + 1, vip + 65001},
		{"unknown pool", top.ID, 70000, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, ok, err := firstFree(ctx, st.Pool, c.pool, c.from, 1<<32)
			if err != nil {
				t.Fatal(err)
			}
			if !ok {
				got = -1
			}
			if got != c.want {
				t.Fatalf("first free of %s from %d: got %d, want %d", c.pool, c.from, got, c.want)
			}
			var plan []struct{ Plan planNode }
			var raw []byte
			if err := st.Pool.QueryRow(ctx, `EXPLAIN (ANALYZE, FORMAT JSON) `+firstFreeSQL, c.pool, c.from).Scan(&raw); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &plan); err != nil {
				t.Fatal(err)
			}
			if rows := plan[0].Plan.rows(); rows > 1 {
				t.Fatalf("the allocation read %d rows; want at most 1:\n%s", rows, raw)
			}
		})
	}
}

// planNode is one node of EXPLAIN (ANALYZE, FORMAT JSON).
type planNode struct {
	NodeType      string     `json:"Node Type"`
	ActualRows    float64    `json:"Actual Rows"`
	ActualLoops   float64    `json:"Actual Loops"`
	RemovedFilter float64    `json:"Rows Removed by Filter"`
	RemovedIndex  float64    `json:"Rows Removed by Index Recheck"`
	HeapFetches   float64    `json:"Heap Fetches"`
	Plans         []planNode `json:"Plans"`
}

// rows is what the scans under the node read from tables and indexes,
// whether they returned it or threw it away.
func (p planNode) rows() int64 {
	var n float64
	if strings.HasSuffix(p.NodeType, "Scan") && len(p.Plans) == 0 {
		n = (p.ActualRows + p.RemovedFilter + p.RemovedIndex) * max(p.ActualLoops, 1)
	}
	for _, c := range p.Plans {
		n += float64(c.rows())
	}
	return int64(n)
}
