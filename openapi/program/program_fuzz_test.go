package program

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// byteSource hands out a fuzz input's bytes one at a time (zeros once they
// run out), and pieces of its text.
type byteSource struct {
	b     []byte
	words []string
}

func (s *byteSource) next() int {
	if len(s.b) == 0 {
		return 0
	}
	v := int(s.b[0])
	s.b = s.b[1:]
	return v
}

// word is one of the text's words, or a small number's spelling.
func (s *byteSource) word() string {
	v := s.next()
	if len(s.words) == 0 || v%4 == 0 {
		return fmt.Sprint(v % 8)
	}
	return s.words[v%len(s.words)]
}

// fuzzProgram draws a program of host h1 from data, with strings from
// text: any bytes make a valid program (keyed elements unique by key;
// flows may repeat, as compiled programs' may not but Diff must bear).
func fuzzProgram(data []byte, text string) *openapi.Program {
	s := &byteSource{b: data, words: strings.Fields(text)}
	p := &openapi.Program{Host: "h1", Bridge: openapi.BridgeSpec{Name: "br-int", FailMode: "secure"},
		Tunnels: []openapi.TunnelPort{}, Containers: []openapi.ContainerPort{}, Groups: []openapi.Group{}}
	for n := s.next() % 16; n > 0; n-- {
		p.Flows = append(p.Flows, openapi.Flow{Table: s.next() % 4, Priority: s.next() % 3 * 100, Cookie: uint64(s.next() % 3),
			Match: "reg0=" + s.word(), Actions: "goto_table:" + s.word()})
	}
	seen := map[string]bool{}
	unique := func(k string) bool {
		if seen[k] {
			return false
		}
		seen[k] = true
		return true
	}
	for n := s.next() % 5; n > 0; n-- {
		if t := (openapi.TunnelPort{Name: "syt" + s.word(), Type: "geneve", PeerHost: s.word(), RemoteIP: s.word()}); unique("t" + t.Name) {
			p.Tunnels = append(p.Tunnels, t)
		}
	}
	for n := s.next() % 5; n > 0; n-- {
		if c := (openapi.ContainerPort{Name: "syc" + s.word(), ID: s.word(), IP: s.word(), MTU: 1400 + s.next()}); unique("c" + c.Name) {
			p.Containers = append(p.Containers, c)
		}
	}
	for n := s.next() % 4; n > 0; n-- {
		if g := (openapi.Group{ID: uint32(s.next() % 8), Spec: "type=select,bucket=" + s.word()}); unique(fmt.Sprint("g", g.ID)) {
			p.Groups = append(p.Groups, g)
		}
	}
	for n := s.next() % 4; n > 0; n-- {
		r := openapi.DNSRecord{Network: s.word(), VNI: 1, Kind: openapi.DNSContainer, Name: s.word(), IP: s.word()}
		if s.next()%2 == 1 {
			r.Kind, r.Ports = openapi.DNSService, []openapi.ServicePort{{Name: s.word(), Port: 1 + s.next(), Protocol: "TCP"}}
		}
		if unique("d" + r.Key()) {
			p.DNS = append(p.DNS, r)
		}
	}
	for n := s.next() % 3; n > 0; n-- {
		h := openapi.HealthProbe{Service: s.word(), Container: s.word(), Port: s.word(), Check: openapi.HealthCheck{Protocol: "TCP", Port: 1 + s.next()}}
		if unique("h" + h.Key()) {
			p.HealthChecks = append(p.HealthChecks, h)
		}
	}
	if s.next()%2 == 1 {
		p.Gateway = &openapi.Gateway{MAC: s.word()}
	}
	p.Digest = Digest(p)
	return p
}

// FuzzDiffPatch: for programs a, b, c drawn from the input,
// Patch(a, Diff(a, b)) is b (sorted, a's revision) with b's digest, plain
// and tracked; the composition of Diff(a, b) and Diff(b, c) patches a into
// c; a delta that does not start from a is refused, never applied. And a
// delta as an agent receives it, any JSON, applied to a: Patch and a
// tracked patch never panic, and agree.
func FuzzDiffPatch(f *testing.F) {
	a := []byte{3, 1, 2, 0, 1, 1, 0, 2, 1, 2, 2, 1, 1, 2, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1}
	b := []byte{2, 1, 1, 0, 2, 0, 1, 3, 3, 1, 1, 1, 1, 1, 1, 1}
	pa := fuzzProgram(a, "a b c")
	pa.Revision = 7
	valid, _ := json.Marshal(Diff(pa, fuzzProgram(b, "a b c")))
	f.Add(a, b, []byte{9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9, 9}, "a b c", valid)
	f.Add([]byte{15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, []byte{15, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}, []byte{}, "x",
		[]byte(`{"fromDigest":"`+pa.Digest+`","removeFlows":[{"table":0,"priority":0,"match":"","actions":""}],"removeGroups":[1,1]}`))
	f.Add([]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20}, []byte{20, 19, 18, 17, 16, 15, 14, 13, 12, 11},
		[]byte{4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4}, "\x00 é ,; actions=drop",
		[]byte(`{"fromDigest":"`+pa.Digest+`","addTunnels":[{"name":"x"},{"name":"x"}],"removeContainers":["nope"]}`))
	f.Fuzz(func(t *testing.T, da, db, dc []byte, text string, delta []byte) {
		a, b, c := fuzzProgram(da, text), fuzzProgram(db, text), fuzzProgram(dc, text)
		a.Revision = 7
		d := Diff(a, b)
		got, err := Patch(a, d)
		if err != nil {
			t.Fatalf("patch(diff(a, b), a): %v", err)
		}
		if want := normalized(b); !patchedTo(got, want, a.Revision) || got.Digest != b.Digest {
			t.Fatalf("patch(diff(a, b), a) = %+v, want %+v", got, want)
		}
		tr, err := Track(a).Patch(d)
		if err != nil || tr.P.Digest != b.Digest {
			t.Fatalf("tracked patch: %v (want digest %q)", err, b.Digest)
		}
		comp, err := Compose(d, Diff(b, c))
		if err != nil {
			t.Fatalf("compose: %v", err)
		}
		if got, err := Patch(a, comp); err != nil || got.Digest != c.Digest {
			t.Fatalf("patch with the composition: %v", err)
		}
		if c.Digest != a.Digest {
			if _, err := Patch(a, Diff(c, b)); err == nil {
				t.Fatal("a delta from another program was applied")
			}
		}

		var wire openapi.ProgramDelta
		if json.Unmarshal(delta, &wire) != nil {
			return
		}
		p, err := Patch(a, &wire)
		tp, terr := Track(a).Patch(&wire)
		if (err == nil) != (terr == nil) {
			t.Fatalf("received delta: patch %v, tracked patch %v", err, terr)
		}
		if err == nil && (p.Digest != tp.P.Digest || p.Digest != Digest(p)) {
			t.Fatalf("received delta: digests: patch %q, tracked %q, recomputed %q", p.Digest, tp.P.Digest, Digest(p))
		}
	})
}
