package client

import (
	"strings"
	"testing"
)

// The stream's messages as ReadSSE splits them; the live-only messages on
// the stream are not Events: a host-status or policy-log message must not
// read as an empty change.
func TestReadSSEAndChange(t *testing.T) {
	stream := "id: 4\nevent: network.created\ndata: {\"revision\":4,\"kind\":\"network\",\"action\":\"created\",\"id\":\"n\"}\n\n" +
		"event: host-status\ndata: {\"host\":\"h1\",\"appliedRevision\":3}\n\n" +
		"event: policy-log\ndata: {\"policy\":\"p\",\"verdict\":\"drop\"}\n\n" +
		": keep-alive\n\n" +
		"id: 7\n\n"
	var got []SSEMessage
	if err := ReadSSE(strings.NewReader(stream), func(m SSEMessage) bool { got = append(got, m); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 5 || got[0].ID != 4 || got[1].Event != "host-status" || got[4].ID != 7 || got[4].Data != "" {
		t.Fatalf("messages %+v", got)
	}
	for _, m := range got[1:] {
		if e, ok := m.Change(); ok {
			t.Errorf("%+v decoded as an event: %+v", m, e)
		}
	}
	e, ok := got[0].Change()
	if !ok || e.Revision != 4 || e.Kind != "network" {
		t.Errorf("network.created: %v %+v", ok, e)
	}
	n := 0
	_ = ReadSSE(strings.NewReader(stream), func(SSEMessage) bool { n++; return n < 2 })
	if n != 2 {
		t.Errorf("fn returned false at the second message; called %d times", n)
	}
}
