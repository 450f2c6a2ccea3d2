package ovs

import (
	"context"
	"encoding/binary"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// The check and the bundle in one exchange, on a real switch: the counts
// are the switch's before the commit (the aggregate requests go first in
// the write), they agree with the OpenFlow 1.3 counts the resync uses,
// and a failed check or a refused message still commits the rest: what
// installChange relies on when it forgets the installed tables.
func TestCheckedBundle(t *testing.T) {
	l := newLab(t, 1, "geneve")
	h := l.Hosts[0]
	addTestBridge(t, h, "br-chk")
	q := &modConn{socket: h.Path("br-chk.mgmt")}
	defer q.close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	query := &queryConn{socket: h.Path("br-chk.mgmt")}
	defer query.close()

	flow := func(prio int, cookie uint64, actions string) openapi.Flow {
		return openapi.Flow{Table: 9, Priority: prio, Cookie: cookie, Match: "reg5=1", Actions: actions}
	}
	mods := func(fs ...openapi.Flow) bundleMods {
		t.Helper()
		keys, lines := renderAll(t, fs, nil)
		m, err := encodeChange(nil, keys, lines)
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := Cookie(0x99, 3), Cookie(0x77, 3) // renderAll's generation
	counts := func(want ...int) {
		t.Helper()
		got, err := query.flowCounts(ctx, []uint64{a, b})
		if err != nil || !slices.Equal(got, want) {
			t.Fatalf("counts %v (%v), want %v", got, err, want)
		}
	}

	if err := q.checkedBundle(ctx, []uint64{a, b}, []int{0, 0}, mods(flow(1, 0x99, "drop"))); err != nil {
		t.Fatalf("first bundle: %v", err)
	}
	counts(1, 0)
	// The check sees the table before its own bundle.
	if err := q.checkedBundle(ctx, []uint64{a, b}, []int{1, 0}, mods(flow(2, 0x99, "drop"), flow(3, 0x77, "drop"))); err != nil {
		t.Fatalf("second bundle: %v", err)
	}
	counts(2, 1)
	// A stale expectation is drift, and the bundle is in all the same.
	if err := q.checkedBundle(ctx, []uint64{a}, []int{1}, mods(flow(4, 0x99, "drop"))); !errors.Is(err, errDrift) {
		t.Fatalf("stale counts: got %v, want drift", err)
	}
	counts(3, 1)
	// A message the switch refuses (goto_table back) fails the exchange;
	// the others are committed.
	var se *ofSwitchError
	if err := q.checkedBundle(ctx, []uint64{a}, []int{3}, mods(flow(5, 0x99, "drop"), flow(6, 0x77, "goto_table:3"))); !errors.As(err, &se) {
		t.Fatalf("a refused flow: got %v, want the switch's error", err)
	}
	counts(4, 1)
	// The connection was closed on the error; the next exchange redials.
	if err := q.checkedBundle(ctx, []uint64{a, b}, []int{4, 1}, mods(flow(7, 0x77, "drop"))); err != nil {
		t.Fatalf("after a refusal: %v", err)
	}
	counts(4, 2)
	// ovs-vswitchd restarted under an idle connection: redialed.
	h.RestartOVS(t) // the bridge stays in OVSDB, without its flows
	if err := q.checkedBundle(ctx, []uint64{a, b}, []int{0, 0}, mods(flow(1, 0x99, "drop"))); err != nil {
		t.Fatalf("after an OVS restart: %v", err)
	}
	counts(1, 0)
}

// aggregateCount15 reads the flow count among the OXS fields of an
// OpenFlow 1.5 aggregate reply, wherever it is, and refuses a reply
// without one or with a length past its end.
func TestAggregateCount15(t *testing.T) {
	oxs := func(field byte, v []byte) []byte {
		return append([]byte{0x80, 0x02, field << 1, byte(len(v))}, v...)
	}
	stats := func(fields ...[]byte) []byte {
		b := []byte{0, 0, 0, 0}
		for _, f := range fields {
			b = append(b, f...)
		}
		binary.BigEndian.PutUint16(b[2:], uint16(len(b)))
		for len(b)%8 != 0 {
			b = append(b, 0)
		}
		return b
	}
	u32 := binary.BigEndian.AppendUint32(nil, 42)
	u64 := binary.BigEndian.AppendUint64(nil, 7)
	for _, b := range [][]byte{stats(oxs(3, u32)), stats(oxs(4, u64), oxs(5, u64), oxs(3, u32))} {
		if n, err := aggregateCount15(b); err != nil || n != 42 {
			t.Fatalf("%x: %d %v, want 42", b, n, err)
		}
	}
	bad := stats(oxs(4, u64))
	long := stats(oxs(3, u32))
	binary.BigEndian.PutUint16(long[2:], 200)
	for _, b := range [][]byte{nil, {0, 0}, bad, long} {
		if n, err := aggregateCount15(b); err == nil {
			t.Fatalf("%x: %d, want an error", b, n)
		}
	}
}
