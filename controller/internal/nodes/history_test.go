package nodes

import (
	"fmt"
	"testing"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/program"
)

// history makes (with container names starting with prefix) n changes of h1's program (containers created on h1 and h2,
// some deleted again, one revision each) and returns h1's programs, oldest
// first: the one before the changes, then one after each.
func (f *fixture) history(prefix string, n int) []*openapi.Program {
	f.t.Helper()
	progs := []*openapi.Program{f.poll("h1", "").Program}
	for i := 0; len(progs) <= n; i++ {
		switch {
		case i%5 == 4:
			f.deleteContainer(fmt.Sprint(prefix, i-2))
		case i%2 == 0:
			f.container(fmt.Sprint(prefix, i), "blue", "h1")
		default:
			f.container(fmt.Sprint(prefix, i), "blue", "h2")
		}
		f.catchUp()
		up := f.poll("h1", "")
		if up.Program.Digest == progs[len(progs)-1].Digest {
			f.t.Fatalf("change %d did not change h1's program", i)
		}
		progs = append(progs, up.Program)
	}
	return progs
}

// patched is old patched with the update an agent at old gets, checked
// against the program compiled from scratch.
func (f *fixture) patched(old *openapi.Program, up *openapi.ProgramUpdate) {
	f.t.Helper()
	if up == nil || up.Full || up.Delta == nil {
		f.t.Fatalf("agent at %s: want a delta, got %+v", old.Digest, up)
	}
	p, err := program.Patch(old, up.Delta)
	if err != nil {
		f.t.Fatalf("agent at %s: patch: %v", old.Digest, err)
	}
	p.Revision = up.Revision
	truth := f.truth("h1")
	if p.Digest != truth.Digest {
		f.t.Fatalf("agent at %s: patched to %s, the full program is %s", old.Digest, p.Digest, truth.Digest)
	}
	sameContent(f.t, "patched program", p, truth)
}

// An agent k changes behind, for every k up to maxDeltas, gets one delta
// that patches its program into the full one (digest and content); an agent
// maxDeltas+1 changes behind gets the whole program. Before the bounded
// history, every agent two or more changes behind got the whole program.
func TestBehindGetsComposedDelta(t *testing.T) {
	f := twoHosts(t)
	progs := f.history("c", maxDeltas+1)
	last := len(progs) - 1
	for k := 1; k <= maxDeltas; k++ {
		f.patched(progs[last-k], f.poll("h1", progs[last-k].Digest))
	}
	up := f.poll("h1", progs[0].Digest)
	if up == nil || !up.Full || up.Program == nil {
		t.Fatalf("agent %d changes behind: want the whole program, got %+v", maxDeltas+1, up)
	}
	sameContent(t, "full program", up.Program, f.truth("h1"))
}

// The kept deltas are bounded by size too: with room for only the last
// delta, an agent two changes behind gets the whole program. After a reload
// no delta leads from before it.
func TestHistoryBounds(t *testing.T) {
	f := twoHosts(t)
	f.m.maxDeltaBytes = 1
	progs := f.history("c", 3)
	f.patched(progs[2], f.poll("h1", progs[2].Digest))
	if up := f.poll("h1", progs[1].Digest); !up.Full {
		t.Fatalf("over the size bound: %+v", up)
	}
	f.m.maxDeltaBytes = maxDeltaBytes
	progs = f.history("d", 3)
	f.patched(progs[0], f.poll("h1", progs[0].Digest))
	f.load()
	f.container("late", "blue", "h1")
	f.catchUp()
	if up := f.poll("h1", progs[2].Digest); !up.Full {
		t.Fatalf("a digest from before the reload: %+v", up)
	}
	f.patched(progs[3], f.poll("h1", progs[3].Digest))
}

// A wait looks only at the hosts indexed for its revision: for every
// revision, that gives the same states as looking at every host, also
// across a host's removal, a reload and trimmed histories.
func TestStatesIndexMatchesScan(t *testing.T) {
	f := twoHosts(t)
	f.network("red", "10.20.0.0/24")
	f.host("h3", "192.168.200.13")
	f.container("r1", "red", "h3")
	f.catchUp()
	f.history("c", 8)
	f.load()
	f.container("r2", "red", "h1")
	f.catchUp()
	f.deleteContainer("r1")
	if _, err := f.st.DeleteHost(f.ctx, "test", "h3", 0); err != nil {
		t.Fatal(err)
	}
	f.catchUp()
	if f.m.hosts["h3"] != nil {
		t.Fatal("h3 not removed")
	}
	f.history("d", maxDeltas+3) // trims h1's history
	f.m.mu.Lock()
	defer f.m.mu.Unlock()
	indexed := 0
	for rev := int64(1); rev <= f.m.rev; rev++ {
		if rev > f.m.hostsFrom {
			indexed++
		}
		got, _ := f.m.states(rev)
		from := f.m.hostsFrom
		f.m.hostsFrom = f.m.rev // every host scanned
		want, _ := f.m.states(rev)
		f.m.hostsFrom = from
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("revision %d: indexed %v, scanned %v", rev, got, want)
		}
	}
	if indexed < maxDeltas/2 {
		t.Fatalf("only %d of %d revisions indexed", indexed, f.m.rev)
	}
}
