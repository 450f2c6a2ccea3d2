package store

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

func TestBlockOf(t *testing.T) {
	for _, c := range []struct {
		cidr string
		off  int64
		want string
	}{
		{"10.0.0.0/24", 2, "10.0.0.0/26"},
		{"10.0.0.0/24", 64, "10.0.0.64/26"},
		{"10.0.0.0/24", 254, "10.0.0.192/26"},
		{"10.0.0.16/28", 14, "10.0.0.16/28"},
		{"10.0.0.0/26", 62, "10.0.0.0/26"},
		{"10.0.0.0/8", 1<<24 - 2, "10.255.255.192/26"},
	} {
		if got := blockOf(netip.MustParsePrefix(c.cidr), c.off); got != c.want {
			t.Errorf("block of offset %d of %s: got %s, want %s", c.off, c.cidr, got, c.want)
		}
	}
}

// mkContainer creates a container on host (at ip unless ""), or fails.
func mkContainer(t testing.TB, st *Store, network, name, host, ip string) openapi.Container {
	t.Helper()
	c, err := st.CreateContainer(context.Background(), "test", openapi.Container{Name: name, Network: network, Host: host, IP: ip})
	if err != nil {
		t.Fatalf("create %s on %s: %v", name, host, err)
	}
	return c
}

// move puts container name of network on host, or fails.
func move(t testing.TB, st *Store, network, name, host string) openapi.Container {
	t.Helper()
	c, err := st.MoveContainer(context.Background(), "test", name, network, host)
	if err != nil {
		t.Fatalf("move %s to %s: %v", name, host, err)
	}
	return c
}

// checkBlocks checks the invariant of IPAM blocks over every container:
// an ip_block is the block of the container's address, owned by its host.
// It also checks that reads show ip_block as IPBlock.
func checkBlocks(t testing.TB, st *Store) {
	t.Helper()
	ctx := context.Background()
	var bad string
	if err := st.Pool.QueryRow(ctx, `SELECT coalesce(string_agg(format('%s/%s (%s on %s) in %s of %s', n.name, c.name,
			host(c.ip), h.name, c.ip_block, coalesce(o.name, 'nobody')), ', '), '')
		FROM containers c JOIN networks n ON n.id = c.network_id JOIN hosts h ON h.id = c.host_id
		LEFT JOIN ipam_blocks b ON b.network_id = c.network_id AND b.idx = c.ip_offset >> (32 - greatest(26, masklen(n.cidr)))
		LEFT JOIN hosts o ON o.id = b.host_id
		WHERE c.ip_block IS NOT NULL AND (b.host_id IS DISTINCT FROM c.host_id
		   OR c.ip_block <> network(set_masklen(c.ip, greatest(26, masklen(n.cidr)))))`).Scan(&bad); err != nil {
		t.Fatal(err)
	}
	if bad != "" {
		t.Fatalf("containers in a block their host does not own: %s", bad)
	}
	in, err := st.LoadIntent(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range in.Containers {
		if c.IPBlock == "" {
			continue
		}
		if p, err := netip.ParsePrefix(c.IPBlock); err != nil || !p.Contains(netip.MustParseAddr(c.IP)) || p.Masked() != p {
			t.Fatalf("%s/%s: ipBlock %q does not hold its address %s", c.Network, c.Name, c.IPBlock, c.IP)
		}
	}
}

// owner names the host that owns block of network ("" when nobody does).
func owner(t testing.TB, st *Store, network, block string) string {
	t.Helper()
	var h string
	if err := st.Pool.QueryRow(context.Background(), `SELECT coalesce((SELECT h.name FROM ipam_blocks b
		JOIN networks n ON n.id = b.network_id JOIN hosts h ON h.id = b.host_id
		WHERE n.name = $1 AND b.idx = ($2::cidr::inet - n.cidr::inet) >> (32 - greatest(26, masklen(n.cidr)))), '')`,
		network, block).Scan(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// lastEventBlock is the ipBlock of the last event of container id.
func lastEventBlock(t testing.TB, st *Store, id string) string {
	t.Helper()
	var b string
	if err := st.Pool.QueryRow(context.Background(), `SELECT coalesce(object->>'ipBlock', '') FROM events
		WHERE object_id = $1 ORDER BY seq DESC LIMIT 1`, id).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestBlocksPerHost(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	mkHost(t, st, "h1", "192.0.2.1")
	mkHost(t, st, "h2", "192.0.2.2")
	mkNetwork(t, st, "n", "10.1.0.0/24", 0)
	blocks := map[string]map[string]bool{"h1": {}, "h2": {}}
	byName := map[string]openapi.Container{}
	for i := range 20 {
		h := []string{"h1", "h2"}[i%2]
		c := mkContainer(t, st, "n", fmt.Sprintf("c%d", i), h, "")
		if c.IPBlock == "" || !netip.MustParsePrefix(c.IPBlock).Contains(netip.MustParseAddr(c.IP)) {
			t.Fatalf("%s on %s: %s in block %q", c.Name, h, c.IP, c.IPBlock)
		}
		if o := owner(t, st, "n", c.IPBlock); o != h {
			t.Fatalf("%s on %s is in %s, owned by %q", c.Name, h, c.IPBlock, o)
		}
		if b := lastEventBlock(t, st, c.ID); b != c.IPBlock {
			t.Fatalf("the created event of %s has ipBlock %q, want %s", c.Name, b, c.IPBlock)
		}
		blocks[h][c.IPBlock] = true
		byName[c.Name] = c
	}
	if !maps2Equal(blocks, map[string][]string{"h1": {"10.1.0.0/26"}, "h2": {"10.1.0.64/26"}}) {
		t.Fatalf("blocks: %v; want h1 in 10.1.0.0/26, h2 in 10.1.0.64/26", blocks)
	}
	// Reads show what the create answered.
	cs, _, err := st.ListContainers(ctx, ListOptions{Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		if c.IPBlock != byName[c.Name].IPBlock {
			t.Fatalf("%s: listed in block %q, created in %q", c.Name, c.IPBlock, byName[c.Name].IPBlock)
		}
	}
	if c, err := st.GetContainer(ctx, "c3", "n"); err != nil || c.IPBlock != "10.1.0.64/26" {
		t.Fatalf("get c3: %q, %v", c.IPBlock, err)
	}
	checkBlocks(t, st)
}

// maps2Equal compares host -> set of blocks with host -> list of blocks.
func maps2Equal(got map[string]map[string]bool, want map[string][]string) bool {
	if len(got) != len(want) {
		return false
	}
	for h, bs := range want {
		if len(got[h]) != len(bs) {
			return false
		}
		for _, b := range bs {
			if !got[h][b] {
				return false
			}
		}
	}
	return true
}

// A host whose blocks are full claims the next free one; with every block
// owned, hosts borrow until the network is full.
func TestBlocksClaimThenBorrow(t *testing.T) {
	st, _ := newStore(t, Options{})
	mkHost(t, st, "h1", "192.0.2.1")
	mkHost(t, st, "h2", "192.0.2.2")
	mkNetwork(t, st, "n", "10.1.0.0/24", 0) // gateway .1: block 0 has 62 usable addresses
	n := 0
	create := func(h string) openapi.Container {
		n++
		return mkContainer(t, st, "n", fmt.Sprintf("c%d", n), h, "")
	}
	want := func(c openapi.Container, block string) {
		t.Helper()
		if c.IPBlock != block {
			t.Fatalf("%s (%s on %s) in block %q, want %q", c.Name, c.IP, c.Host, c.IPBlock, block)
		}
	}
	want(create("h1"), "10.1.0.0/26")
	want(create("h2"), "10.1.0.64/26")
	for range 61 {
		want(create("h1"), "10.1.0.0/26")
	}
	// Block 0 is full: h1 claims block 2, not h2's block 1.
	c := create("h1")
	want(c, "10.1.0.128/26")
	if c.IP != "10.1.0.128" {
		t.Fatalf("the first address of a claimed block is %s, want 10.1.0.128", c.IP)
	}
	for range 63 {
		want(create("h2"), "10.1.0.64/26")
	}
	want(create("h2"), "10.1.0.192/26") // the last block
	for range 63 {
		want(create("h1"), "10.1.0.128/26")
	}
	// Every block is owned, and h1's are full: it borrows from h2's.
	c = create("h1")
	want(c, "")
	if owner(t, st, "n", blockOf(netip.MustParsePrefix("10.1.0.0/24"), addrOffset(netip.MustParsePrefix("10.1.0.0/24"), netip.MustParseAddr(c.IP)))) != "h2" {
		t.Fatalf("h1 borrowed %s, not from h2's block", c.IP)
	}
	// h2 fills its own block first, then borrows nothing (the network is full).
	for range 61 {
		want(create("h2"), "10.1.0.192/26")
	}
	_, err := createContainer(t, st, "n", "one-too-many")
	wantStatus(t, err, exhausted)
	checkBlocks(t, st)
	checkFreeList(t, st, "n")
	// A freed address in h2's block goes back to h2 first.
	if _, err := st.DeleteContainer(context.Background(), "test", "c100", "n", 0); err != nil {
		t.Fatal(err)
	}
	want(create("h2"), "10.1.0.64/26")
	checkBlocks(t, st)
}

func TestBlocksRequestedAddress(t *testing.T) {
	st, _ := newStore(t, Options{})
	mkHost(t, st, "h1", "192.0.2.1")
	mkHost(t, st, "h2", "192.0.2.2")
	mkNetwork(t, st, "n", "10.1.0.0/24", 0)
	for _, c := range []struct {
		host, ip, block, owner string
	}{
		{"h1", "10.1.0.200", "10.1.0.192/26", "h1"}, // nobody's: claimed
		{"h1", "10.1.0.201", "10.1.0.192/26", "h1"}, // its own
		{"h2", "10.1.0.202", "", "h1"},              // h1's: borrowed
		{"h2", "10.1.0.70", "10.1.0.64/26", "h2"},
	} {
		got := mkContainer(t, st, "n", "at-"+c.ip[len("10.1.0."):], c.host, c.ip)
		if got.IP != c.ip || got.IPBlock != c.block {
			t.Fatalf("asked %s on %s: got %s in block %q, want %q", c.ip, c.host, got.IP, got.IPBlock, c.block)
		}
		if o := owner(t, st, "n", blockOf(netip.MustParsePrefix("10.1.0.0/24"), addrOffset(netip.MustParsePrefix("10.1.0.0/24"), netip.MustParseAddr(c.ip)))); o != c.owner {
			t.Fatalf("the block of %s is %q's, want %s's", c.ip, o, c.owner)
		}
	}
	// Allocation goes on in the host's own blocks, from the lowest block
	// nobody owns once they are full.
	if c := mkContainer(t, st, "n", "next", "h2", ""); c.IPBlock != "10.1.0.64/26" {
		t.Fatalf("h2's next: %s in %q", c.IP, c.IPBlock)
	}
	if c := mkContainer(t, st, "n", "first", "h1", ""); c.IPBlock != "10.1.0.192/26" {
		t.Fatalf("h1's next: %s in %q", c.IP, c.IPBlock)
	}
	// Still refused, claiming nothing: a used address, the gateway.
	_, err := st.CreateContainer(context.Background(), "test", openapi.Container{Name: "dup", Network: "n", Host: "h2", IP: "10.1.0.200"})
	wantStatus(t, err, 409)
	_, err = st.CreateContainer(context.Background(), "test", openapi.Container{Name: "gw", Network: "n", Host: "h2", IP: "10.1.0.1"})
	wantStatus(t, err, 409)
	if o := owner(t, st, "n", "10.1.0.0/26"); o != "" {
		t.Fatalf("a refused create claimed 10.1.0.0/26 for %s", o)
	}
	checkBlocks(t, st)
}

func TestBlocksMove(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	mkHost(t, st, "h1", "192.0.2.1")
	mkHost(t, st, "h2", "192.0.2.2")
	mkHost(t, st, "h3", "192.0.2.3")
	mkNetwork(t, st, "n", "10.1.0.0/24", 0)
	c := mkContainer(t, st, "n", "c", "h1", "")
	mkContainer(t, st, "n", "d", "h2", "")
	if c.IPBlock != "10.1.0.0/26" {
		t.Fatalf("c in %q", c.IPBlock)
	}
	steps := []struct {
		host, block string
	}{
		{"h2", ""},            // h1's block: borrowed
		{"h3", ""},            // the same
		{"h1", "10.1.0.0/26"}, // home again
	}
	for _, s := range steps {
		got := move(t, st, "n", "c", s.host)
		if got.Host != s.host || got.IPBlock != s.block {
			t.Fatalf("moved to %s: on %s in block %q, want %q", s.host, got.Host, got.IPBlock, s.block)
		}
		if b := lastEventBlock(t, st, c.ID); b != s.block {
			t.Fatalf("the event of the move to %s has ipBlock %q, want %q", s.host, b, s.block)
		}
		checkBlocks(t, st)
	}
	// An update with a new host is a move too; an IPBlock asked is ignored.
	got, err := st.UpdateContainer(ctx, "test", "c", "n", 0, openapi.Container{Host: "h2", IPBlock: "10.1.0.64/26", Labels: map[string]string{"a": "b"}})
	if err != nil || got.IPBlock != "" {
		t.Fatalf("update to h2: %q, %v; want borrowed", got.IPBlock, err)
	}
	got, err = st.UpdateContainer(ctx, "test", "c", "n", 0, openapi.Container{IPBlock: "10.1.0.128/26", Labels: map[string]string{}})
	if err != nil || got.IPBlock != "" || got.Host != "h2" {
		t.Fatalf("update on h2: %s %q, %v; want borrowed still", got.Host, got.IPBlock, err)
	}
	if got, err = st.UpdateContainer(ctx, "test", "c", "n", 0, openapi.Container{Host: "h1"}); err != nil || got.IPBlock != "10.1.0.0/26" {
		t.Fatalf("update to h1: %q, %v", got.IPBlock, err)
	}
	// A container whose block nobody owns (written before blocks): the
	// host it moves to claims it.
	fill(t, st, "n", 130, 130, 1)
	if got := move(t, st, "n", "fill-130", "h3"); got.IPBlock != "10.1.0.128/26" || owner(t, st, "n", got.IPBlock) != "h3" {
		t.Fatalf("moved to h3: %q, owned by %s", got.IPBlock, owner(t, st, "n", got.IPBlock))
	}
	checkBlocks(t, st)
}

// Deleting a host (its containers gone) releases its blocks.
func TestBlocksReleasedWithHost(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	mkHost(t, st, "h1", "192.0.2.1")
	mkHost(t, st, "h2", "192.0.2.2")
	mkNetwork(t, st, "n", "10.1.0.0/24", 0)
	mkContainer(t, st, "n", "a", "h1", "")
	b := mkContainer(t, st, "n", "b", "h2", "")
	// b leaves h2 (borrowed on h1), so h2 can go.
	if got := move(t, st, "n", "b", "h1"); got.IPBlock != "" {
		t.Fatalf("b moved to h1 in %q", got.IPBlock)
	}
	if _, err := st.DeleteHost(ctx, "test", "h2", 0); err != nil {
		t.Fatal(err)
	}
	if o := owner(t, st, "n", b.IPBlock); o != "" {
		t.Fatalf("%s is still %s's", b.IPBlock, o)
	}
	mkHost(t, st, "h3", "192.0.2.3")
	if c := mkContainer(t, st, "n", "c", "h3", ""); c.IPBlock != b.IPBlock || c.IP != "10.1.0.65" {
		t.Fatalf("h3 got %s in %q, want the released %s", c.IP, c.IPBlock, b.IPBlock)
	}
	checkBlocks(t, st)
	// A network's blocks go with it.
	for _, c := range []string{"a", "b", "c"} {
		if _, err := st.DeleteContainer(ctx, "test", c, "n", 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := st.DeleteNetwork(ctx, "test", "n", 0); err != nil {
		t.Fatal(err)
	}
	var left int
	if err := st.Pool.QueryRow(ctx, `SELECT count(*) FROM ipam_blocks`).Scan(&left); err != nil || left != 0 {
		t.Fatalf("%d blocks left, %v", left, err)
	}
}

// A network smaller than a /26 is one block.
func TestBlocksSmallNetwork(t *testing.T) {
	st, _ := newStore(t, Options{})
	mkHost(t, st, "h1", "192.0.2.1")
	mkHost(t, st, "h2", "192.0.2.2")
	mkNetwork(t, st, "n", "10.1.0.16/28", 0) // 13 usable addresses
	for i := range 13 {
		h := "h1"
		if i >= 5 {
			h = "h2"
		}
		c := mkContainer(t, st, "n", fmt.Sprintf("c%d", i), h, "")
		want := "10.1.0.16/28"
		if h == "h2" {
			want = ""
		}
		if c.IPBlock != want {
			t.Fatalf("%s on %s: %s in %q, want %q", c.Name, h, c.IP, c.IPBlock, want)
		}
	}
	_, err := createContainer(t, st, "n", "one-too-many")
	wantStatus(t, err, exhausted)
	checkBlocks(t, st)
}

// A /8 network: hundreds of containers over 10 hosts, each in a block of
// its host, the allocation query still reading a handful of rows.
func TestBlocksLargeNetwork(t *testing.T) {
	st, _ := newStore(t, Options{ServiceCIDR: netip.MustParsePrefix("172.16.0.0/16")})
	mkNetwork(t, st, "n", "10.0.0.0/8", 0)
	for i := range 10 {
		mkHost(t, st, fmt.Sprintf("h%d", i), fmt.Sprintf("192.0.2.%d", i+1))
	}
	r := rand.New(rand.NewPCG(1, 2))
	perHost := map[string]map[string]bool{}
	for i := range 400 {
		h := fmt.Sprintf("h%d", r.IntN(10))
		c := mkContainer(t, st, "n", fmt.Sprintf("c%d", i), h, "")
		if c.IPBlock == "" {
			t.Fatalf("%s on %s borrowed %s in a /8", c.Name, h, c.IP)
		}
		if perHost[h] == nil {
			perHost[h] = map[string]bool{}
		}
		perHost[h][c.IPBlock] = true
	}
	// A host claims a block only when its own are full.
	for h, bs := range perHost {
		if len(bs) > 1+400/63 {
			t.Errorf("%s has %d blocks", h, len(bs))
		}
	}
	checkBlocks(t, st)
	vacuum(t, st)
	net, err := st.GetNetwork(context.Background(), "n")
	if err != nil {
		t.Fatal(err)
	}
	// A host with a block, and one without (a claim past the claimed
	// blocks). The tables are a page or two, which the planner reads whole
	// (TestBlockQueryShape has them big): a handful of rows either way,
	// where a search over the /8's 262144 blocks would read as many.
	for _, h := range []string{"h3", "h-new"} {
		if rows := allocPlan(t, st, net.ID, h, 1, false).rows(); rows > 1000 {
			t.Fatalf("allocation for %s read %d rows", h, rows)
		}
	}
}

// hostID is the id of host name (a new host when there is none).
func hostID(t testing.TB, st *Store, name string) string {
	t.Helper()
	var id string
	if err := st.Pool.QueryRow(context.Background(), `SELECT coalesce((SELECT id::text FROM hosts WHERE name = $1), gen_random_uuid()::text)`,
		name).Scan(&id); err != nil {
		t.Fatal(err)
	}
	return id
}

// allocPlan runs allocSQL for host in network (an id) under EXPLAIN
// ANALYZE; with noSeq, it fails on a sequential scan of a table that grows
// (the planner reads a table of a few pages whole: ask only of big ones).
func allocPlan(t testing.TB, st *Store, network, host string, cursor int64, noSeq bool) planNode {
	t.Helper()
	var cidr string
	if err := st.Pool.QueryRow(context.Background(), `SELECT cidr::text FROM networks WHERE id = $1`, network).Scan(&cidr); err != nil {
		t.Fatal(err)
	}
	var raw []byte
	if err := st.Pool.QueryRow(context.Background(), `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) `+allocSQL,
		network, hostID(t, st, host), blockSize(netip.MustParsePrefix(cidr)), cursor).Scan(&raw); err != nil {
		t.Fatal(err)
	}
	var plan []struct{ Plan planNode }
	if err := json.Unmarshal(raw, &plan); err != nil {
		t.Fatal(err)
	}
	var seq func(p planNode) bool
	seq = func(p planNode) bool {
		if p.NodeType == "Seq Scan" && slices.Contains([]string{"ipam_blocks", "ipam_free", "containers"}, p.Relation) {
			return true
		}
		return slices.ContainsFunc(p.Plans, seq)
	}
	if noSeq && seq(plan[0].Plan) {
		t.Fatalf("the allocation scans a table:\n%s", raw)
	}
	t.Logf("allocation for %s: %d rows, %d pages\n%s", host, plan[0].Plan.rows(), plan[0].Plan.SharedHit+plan[0].Plan.SharedRead,
		plan[0].Plan.tree(""))
	return plan[0].Plan
}

// tree is the plan under p, one node a line: enough to see what it read.
func (p planNode) tree(indent string) string {
	s := fmt.Sprintf("%s%s %s %s rows=%.0f loops=%.0f removed=%.0f\n", indent, p.NodeType, p.Relation, p.Index,
		p.ActualRows, p.ActualLoops, p.RemovedFilter)
	for _, c := range p.Plans {
		s += c.tree(indent + "  ")
	}
	return s
}

// What the allocation reads grows with the blocks it walks, never with the
// containers or the free intervals inside owned blocks.
func TestBlockQueryShape(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	for i, h := range []string{"h1", "h2", "h3"} {
		mkHost(t, st, h, fmt.Sprintf("192.0.2.%d", i+1))
	}
	net := mkNetwork(t, st, "n", "10.50.0.0/16", 0) // 1024 blocks of 64
	// Blocks 0-499 full, nobody's (written before blocks); blocks 500-699
	// h2's, every other address used (6400 free intervals); block 900 h3's,
	// empty. The rest free.
	fill(t, st, "n", 2, 500*64-1, 1)
	fill(t, st, "n", 500*64, 700*64-1, 2)
	if _, err := st.Pool.Exec(ctx, `INSERT INTO ipam_blocks (network_id, idx, host_id)
		SELECT $1::uuid, g, (SELECT id FROM hosts WHERE name = 'h2') FROM generate_series(500, 699) g
		UNION ALL SELECT $1::uuid, 900, (SELECT id FROM hosts WHERE name = 'h3')`, net.ID); err != nil {
		t.Fatal(err)
	}
	// Another network's blocks, all claimed: what makes ipam_blocks too big
	// to read whole.
	other := mkNetwork(t, st, "other", "10.64.0.0/12", 0)
	if _, err := st.Pool.Exec(ctx, `INSERT INTO ipam_blocks (network_id, idx, host_id)
		SELECT $1::uuid, g, (SELECT id FROM hosts WHERE name = 'h1') FROM generate_series(0, 16383) g`, other.ID); err != nil {
		t.Fatal(err)
	}
	vacuum(t, st)
	for _, c := range []struct {
		name, host string
		cursor     int64
		step, off  int64
		maxRows    int64
	}{
		{"own empty block", "h3", 1, allocOwn, 900 * 64, 4},
		{"own fragmented blocks, from the cursor", "h2", 600*64 + 1, allocOwn, 600*64 + 2, 4},
		{"own blocks, wrapping", "h2", 950 * 64, allocOwn, 500 * 64, 6},
		// Past the full blocks (one probe), then the run of h2's 200.
		{"claim", "h1", 1, allocClaim, 700 * 64, 2*200 + 16},
	} {
		t.Run(c.name, func(t *testing.T) {
			var got []int64
			if err := st.Pool.QueryRow(ctx, allocSQL, net.ID, hostID(t, st, c.host), int64(64), c.cursor).Scan(&got); err != nil {
				t.Fatal(err)
			}
			if len(got) != 2 || got[0] != c.step || got[1] != c.off {
				t.Fatalf("got %v, want step %d at offset %d", got, c.step, c.off)
			}
			if rows := allocPlan(t, st, net.ID, c.host, c.cursor, true).rows(); rows > c.maxRows {
				t.Fatalf("read %d rows, want at most %d", rows, c.maxRows)
			}
		})
	}
	// Through the store: h1 claims block 700, h3 stays in its own.
	if c := mkContainer(t, st, "n", "a", "h1", ""); c.IPBlock != "10.50.175.0/26" {
		t.Fatalf("h1: %s in %q", c.IP, c.IPBlock)
	}
	if c := mkContainer(t, st, "n", "b", "h3", ""); c.IPBlock != "10.50.225.0/26" {
		t.Fatalf("h3: %s in %q", c.IP, c.IPBlock)
	}
	checkBlocks(t, st)
}

// The invariant holds through any mix of creates, deletes, moves and host
// deletions, in a network small enough to fill.
func TestBlocksInvariantRandom(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	hosts := []string{"h1", "h2", "h3"}
	for i, h := range hosts {
		mkHost(t, st, h, fmt.Sprintf("192.0.2.%d", i+1))
	}
	mkNetwork(t, st, "n", "10.1.0.0/25", 0) // two blocks, 125 usable addresses
	r := rand.New(rand.NewPCG(7, 9))
	var live []string
	next := 0
	counts := map[string]int{}
	for i := range 600 {
		h := hosts[r.IntN(len(hosts))]
		switch op := r.IntN(20); {
		case op < 9 || len(live) == 0:
			next++
			name := fmt.Sprintf("c%d", next)
			ip := ""
			if op == 0 {
				ip = fmt.Sprintf("10.1.0.%d", 2+r.IntN(125))
			}
			c, err := st.CreateContainer(ctx, "test", openapi.Container{Name: name, Network: "n", Host: h, IP: ip})
			if pe, ok := problem.As(err); ok && (pe.Status == exhausted || (ip != "" && pe.Status == 409)) {
				counts["refused"]++
				continue
			} else if err != nil {
				t.Fatal(err)
			}
			counts[map[bool]string{true: "in a block", false: "borrowed"}[c.IPBlock != ""]]++
			live = append(live, name)
		case op < 14:
			k := r.IntN(len(live))
			if _, err := st.DeleteContainer(ctx, "test", live[k], "n", 0); err != nil {
				t.Fatal(err)
			}
			live = slices.Delete(live, k, k+1)
		case op < 19:
			move(t, st, "n", live[r.IntN(len(live))], h)
			counts["moved"]++
		default:
			// h leaves: its containers move to the others, it is deleted
			// and comes back.
			cs, _, err := st.ListContainers(ctx, ListOptions{Host: h, Limit: MaxLimit})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range cs {
				move(t, st, "n", c.Name, hosts[(slices.Index(hosts, h)+1+r.IntN(2))%3])
			}
			if _, err := st.DeleteHost(ctx, "test", h, 0); err != nil {
				t.Fatal(err)
			}
			mkHost(t, st, h, fmt.Sprintf("192.0.2.%d", slices.Index(hosts, h)+1))
			counts["host deleted"]++
		}
		if i%25 == 0 {
			checkBlocks(t, st)
		}
	}
	checkBlocks(t, st)
	checkFreeList(t, st, "n")
	t.Logf("%v", counts)
	for _, k := range []string{"in a block", "borrowed", "refused", "moved", "host deleted"} {
		if counts[k] == 0 {
			t.Errorf("the sequence never had %q", k)
		}
	}
}
