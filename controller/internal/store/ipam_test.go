package store

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"

	"github.com/switchyard/switchyard/migrations"
	"github.com/switchyard/switchyard/openapi"
)

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
	checkFreeList(t, st, "n")
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

// The migration builds the free lists of existing data in one pass; they
// must equal what the triggers kept while that data was written.
func TestFreeListMigration(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	mkHost(t, st, "h1", "192.0.2.1")
	mkNetwork(t, st, "a", "10.1.0.0/24", 7)
	mkNetwork(t, st, "b", "10.2.0.0/26", MaxVNI)
	fill(t, st, "a", 2, 254, 3, 101, 110)
	fill(t, st, "b", 40, 62, 1)
	fillServices(t, st, "a", 5, 9)
	for _, c := range [][2]string{{"a", "fill-107"}, {"a", "fill-104"}, {"b", "fill-50"}} {
		if _, err := st.DeleteContainer(ctx, "test", c[1], c[0], 0); err != nil {
			t.Fatal(err)
		}
	}
	checkFreeList(t, st, "a")
	checkFreeList(t, st, "b")
	const dump = `SELECT coalesce(string_agg(format('%s:%s-%s', coalesce(n.name, f.pool), f.lo, f.hi), ' ' ORDER BY f.pool, f.hi), '')
		FROM ipam_free f LEFT JOIN networks n ON n.id::text = f.pool`
	var kept, built string
	if err := st.Pool.QueryRow(ctx, dump).Scan(&kept); err != nil {
		t.Fatal(err)
	}
	t.Logf("free lists: %s", kept)
	db := stdlib.OpenDBFromPool(st.Pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.DownTo(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := p.Up(ctx); err != nil {
		t.Fatal(err)
	}
	if err := st.Pool.QueryRow(ctx, dump).Scan(&built); err != nil {
		t.Fatal(err)
	}
	if kept != built {
		t.Fatalf("free lists differ:\nkept by the triggers: %s\nbuilt by the migration: %s", kept, built)
	}
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
	top := mkNetwork(t, st, "top", "10.1.0.0/18", MaxVNI)
	full := mkNetwork(t, st, "full", "10.2.0.0/18", 0)
	frag := mkNetwork(t, st, "frag", "10.3.0.0/18", 0)
	fill(t, st, "full", 2, 16382, 1, 3)
	fill(t, st, "frag", 2, 16382, 2)
	fillServices(t, st, "top", 1, 16000)
	vacuum(t, st)
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
		{"fragmented", frag.ID, 10001, 10001},
		{"fragmented on a used one", frag.ID, 10000, 10001},
		{"vip range crowded", poolVIP, vip + 1, vip + 16001},
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
			if err := st.Pool.QueryRow(ctx, `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) `+firstFreeSQL, c.pool, c.from).Scan(&raw); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(raw, &plan); err != nil {
				t.Fatal(err)
			}
			p := plan[0].Plan
			if rows := p.rows(); rows > 1 {
				t.Fatalf("the allocation read %d rows; want at most 1:\n%s", rows, raw)
			}
			// Rows a node makes up (a generate_series of every candidate
			// value) are not read from a table: count pages and spills too.
			if pages := p.SharedHit + p.SharedRead; pages > 8 || p.TempWritten > 0 {
				t.Fatalf("the allocation read %d pages and spilled %d; want at most 8 and none:\n%s", pages, p.TempWritten, raw)
			}
		})
	}
}

// planNode is one node of EXPLAIN (ANALYZE, FORMAT JSON).
type planNode struct {
	NodeType      string     `json:"Node Type"`
	Relation      string     `json:"Relation Name"`
	Index         string     `json:"Index Name"`
	ActualRows    float64    `json:"Actual Rows"`
	ActualLoops   float64    `json:"Actual Loops"`
	RemovedFilter float64    `json:"Rows Removed by Filter"`
	RemovedIndex  float64    `json:"Rows Removed by Index Recheck"`
	SharedHit     int64      `json:"Shared Hit Blocks"`   // this node and its children
	SharedRead    int64      `json:"Shared Read Blocks"`  // this node and its children
	TempWritten   int64      `json:"Temp Written Blocks"` // this node and its children
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
