package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/switchyard/switchyard/controller/internal/problem"
	"github.com/switchyard/switchyard/openapi"
)

// lockWaiters counts this database's backends waiting for a lock.
func lockWaiters(t *testing.T, st *Store) int {
	t.Helper()
	var n int
	if err := st.Pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_stat_activity
		WHERE datname = current_database() AND wait_event_type = 'Lock'`).Scan(&n); err != nil {
		t.Error(err)
	}
	return n
}

// waitFor polls cond until it holds (readiness, not timing: the guard only
// stops a hang).
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	if err := poll(what, cond); err != nil {
		t.Fatal(err)
	}
}

func poll(what string, cond func() bool) error {
	for deadline := time.Now().Add(time.Minute); !cond(); time.Sleep(5 * time.Millisecond) {
		if time.Now().After(deadline) {
			return fmt.Errorf("never: %s", what)
		}
	}
	return nil
}

// Reports that arrive while a batch waits are written together, in one
// transaction, and each is still judged alone: a forged applied revision
// gets its 400 naming appliedRevision, an unknown host its ErrUnknownHost,
// the others land (applied revision, port status, one notice each), and of
// two reports of one host the last wins.
func TestReportsBatched(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	const hosts = 20
	mkNetwork(t, st, "blue", "10.1.0.0/16", 0)
	ids := map[string]string{}
	for i := 0; i < hosts; i++ {
		h := fmt.Sprint("h", i)
		mkHost(t, st, h, fmt.Sprintf("192.168.7.%d", i+1))
		c, err := st.CreateContainer(ctx, "test", openapi.Container{Name: "c" + h, Network: "blue", Host: h})
		if err != nil {
			t.Fatal(err)
		}
		ids[h] = c.ID
	}
	global, err := st.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	notices := make(chan string, 100)
	lctx, stop := context.WithCancel(ctx)
	defer stop()
	listening := make(chan struct{})
	var once sync.Once
	go st.Listen(lctx, StatusChannel, func(p string) {
		if p == "" {
			once.Do(func() { close(listening) })
			return
		}
		notices <- p
	})
	<-listening

	// A write holds the revision row until released: the first report's
	// batch waits for it, and the others queue meanwhile.
	release, holding := make(chan struct{}), make(chan struct{})
	go func() {
		_, err := st.Write(ctx, "test", func(tx *Tx) error {
			close(holding)
			<-release
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}()
	<-holding
	report := func(host string, rev int64, up bool) <-chan error {
		done := make(chan error, 1)
		ns := openapi.NodeStatus{AppliedRevision: rev, Ports: []openapi.PortStatus{{Name: "p", ContainerID: ids[host], Up: up}}}
		go func() { done <- st.ReportStatus(ctx, host, ns) }()
		return done
	}
	first := report("h0", 1, true)
	waitFor(t, "the first batch waits for the revision row", func() bool { return lockWaiters(t, st) > 0 })
	batches := st.rep.batches.Load()
	var rest []<-chan error
	for i := 1; i < hosts; i++ {
		rest = append(rest, report(fmt.Sprint("h", i), int64(i), i%2 == 0))
	}
	forged := report("h1", global+1000, true)
	unknown := report("nosuch", 1, true)
	waitFor(t, "every report queued", func() bool { return len(st.rep.queue) == len(rest)+2 })
	dup := report("h3", 2, true) // after h3's report with revision 3
	waitFor(t, "the duplicate queued", func() bool { return len(st.rep.queue) == len(rest)+3 })
	close(release)

	if err := <-first; err != nil {
		t.Fatal(err)
	}
	for i, done := range rest {
		if err := <-done; err != nil {
			t.Fatalf("h%d: %v", i+1, err)
		}
	}
	if err := <-dup; err != nil {
		t.Fatal(err)
	}
	if err := <-forged; err == nil {
		t.Fatal("a forged applied revision landed")
	} else if p, ok := problem.As(err); !ok || p.Status != 400 || p.Field != "appliedRevision" {
		t.Fatalf("forged: %v, want a 400 naming appliedRevision", err)
	}
	if err := <-unknown; !errors.Is(err, ErrUnknownHost) {
		t.Fatalf("unknown host: %v", err)
	}
	if got := st.rep.batches.Load() - batches; got != 1 {
		t.Fatalf("%d transactions for the %d queued reports, want 1", got, len(rest)+3)
	}

	acks, err := st.HostAcks(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < hosts; i++ {
		h, want := fmt.Sprint("h", i), int64(i)
		switch i {
		case 0:
			want = 1
		case 3:
			want = 2 // the last report wins
		}
		if acks[h].Applied != want {
			t.Fatalf("%s: applied %d, want %d", h, acks[h].Applied, want)
		}
		c, err := st.GetContainer(ctx, ids[h], "")
		if err != nil {
			t.Fatal(err)
		}
		want2 := openapi.ContainerPending
		if i%2 == 0 || i == 3 {
			want2 = openapi.ContainerRunning
		}
		if c.Status != want2 {
			t.Fatalf("%s: container %s, want %s", h, c.Status, want2)
		}
	}
	heard := map[string]int{}
	for len(heard) < hosts {
		n, ok := ParseStatusNotice(<-notices)
		if !ok {
			t.Fatal("unreadable notice")
		}
		heard[n.Host]++
		if n.Host == "nosuch" || n.Applied > global {
			t.Fatalf("notice of a refused report: %+v", n)
		}
	}
}

// A report takes its locks in the writer's order (the revision row first),
// so it never deadlocks with a write group that holds a container row the
// report changes and then waits for the report's host row. Before, the
// report locked its host row, then waited for the container row, and
// PostgreSQL aborted it as a deadlock (40P01).
func TestReportLockOrder(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	mkNetwork(t, st, "blue", "10.1.0.0/16", 0)
	mkHost(t, st, "h1", "192.168.7.1")
	c, err := st.CreateContainer(ctx, "test", openapi.Container{Name: "a", Network: "blue", Host: "h1"})
	if err != nil {
		t.Fatal(err)
	}
	reported := make(chan error, 1)
	_, err = st.Write(ctx, "test", func(tx *Tx) error {
		if _, err := tx.Exec(tx.ctx, `UPDATE containers SET status = 'failed', status_detail = 'x' WHERE id = $1`, c.ID); err != nil {
			return err
		}
		go func() {
			reported <- st.ReportStatus(ctx, "h1", openapi.NodeStatus{AppliedRevision: 1,
				Ports: []openapi.PortStatus{{Name: "p", ContainerID: c.ID, Up: true}}})
		}()
		if err := poll("the report waits for a lock", func() bool { return lockWaiters(t, st) > 0 }); err != nil {
			return err
		}
		_, err := tx.Exec(tx.ctx, `UPDATE hosts SET labels = labels WHERE name = 'h1'`)
		return err
	})
	if err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := <-reported; err != nil {
		t.Fatalf("report: %v", err)
	}
	got, err := st.GetContainer(ctx, c.ID, "")
	if err != nil {
		t.Fatal(err)
	}
	if got.Status != openapi.ContainerRunning {
		t.Fatalf("container %s after the report, want running", got.Status)
	}
}

// A report with portsUnchanged writes no container's status from the ports
// it leaves out (a status set since, e.g. by a move, stays), still lands its
// revision and its failed ports, and is refused with a 400 naming the port
// when it lists one without an error. One with portsDelta writes the
// statuses of the ports it lists only; both flags are refused.
func TestReportPortsUnchanged(t *testing.T) {
	st, _ := newStore(t, Options{})
	ctx := context.Background()
	mkNetwork(t, st, "blue", "10.1.0.0/16", 0)
	mkHost(t, st, "h1", "192.168.7.1")
	var ids []string
	for _, n := range []string{"a", "b"} {
		c, err := st.CreateContainer(ctx, "test", openapi.Container{Name: n, Network: "blue", Host: "h1"})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, c.ID)
	}
	status := func(id string) string {
		t.Helper()
		c, err := st.GetContainer(ctx, id, "")
		if err != nil {
			t.Fatal(err)
		}
		return c.Status
	}
	full := openapi.NodeStatus{AppliedRevision: 1, Ports: []openapi.PortStatus{
		{Name: "pa", ContainerID: ids[0], Up: true}, {Name: "pb", ContainerID: ids[1], Up: true}}}
	if err := st.ReportStatus(ctx, "h1", full); err != nil {
		t.Fatal(err)
	}
	if status(ids[0]) != openapi.ContainerRunning || status(ids[1]) != openapi.ContainerRunning {
		t.Fatalf("after a full report: %s %s", status(ids[0]), status(ids[1]))
	}
	if _, err := st.Pool.Exec(ctx, `UPDATE containers SET status = 'pending' WHERE id = $1`, ids[0]); err != nil {
		t.Fatal(err)
	}
	un := openapi.NodeStatus{AppliedRevision: 2, PortsUnchanged: true, Ports: []openapi.PortStatus{
		{Name: "pb", ContainerID: ids[1], Error: "gone"}}}
	if err := st.ReportStatus(ctx, "h1", un); err != nil {
		t.Fatal(err)
	}
	if got := status(ids[0]); got != openapi.ContainerPending {
		t.Errorf("a left-out port's container: %s, want it untouched (pending)", got)
	}
	if got := status(ids[1]); got != openapi.ContainerFailed {
		t.Errorf("a failed port listed: %s, want failed", got)
	}
	if h, err := st.GetHost(ctx, "h1"); err != nil || h.AppliedRevision != 2 {
		t.Errorf("host after the report: %+v %v", h.AppliedRevision, err)
	}
	bad := openapi.NodeStatus{AppliedRevision: 2, PortsUnchanged: true, Ports: []openapi.PortStatus{{Name: "pa", ContainerID: ids[0], Up: true}}}
	if err := st.ReportStatus(ctx, "h1", bad); err == nil {
		t.Fatal("a port without error in an unchanged report was accepted")
	} else if p, ok := problem.As(err); !ok || p.Status != 400 || p.Field != "ports[0]" {
		t.Fatalf("a port without error in an unchanged report: %v", err)
	}
	// portsDelta: the listed ports' statuses are written, the others stay.
	delta := openapi.NodeStatus{AppliedRevision: 2, PortsDelta: true, Ports: []openapi.PortStatus{{Name: "pa", ContainerID: ids[0], Up: true}}}
	if err := st.ReportStatus(ctx, "h1", delta); err != nil {
		t.Fatal(err)
	}
	if a, b := status(ids[0]), status(ids[1]); a != openapi.ContainerRunning || b != openapi.ContainerFailed {
		t.Errorf("after a delta listing pa: %s %s, want running failed", a, b)
	}
	both := delta
	both.PortsUnchanged = true
	if err := st.ReportStatus(ctx, "h1", both); err == nil {
		t.Fatal("portsDelta with portsUnchanged was accepted")
	} else if p, ok := problem.As(err); !ok || p.Status != 400 || p.Field != "portsDelta" {
		t.Fatalf("portsDelta with portsUnchanged: %v", err)
	}
}
