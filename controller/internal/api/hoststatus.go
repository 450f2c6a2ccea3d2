package api

import (
	"encoding/json"
	"fmt"
	"sync"

	"github.com/gin-gonic/gin"

	"github.com/switchyard/switchyard/controller/internal/store"
	"github.com/switchyard/switchyard/openapi"
)

// HostStatusKind is the event kind of a host's observed state on the
// stream: the revision its agent applied, whether its last apply failed,
// and its failed containers. It is not intent: it has no revision of its
// own, is not in the event log and is not replayed on resume; a client
// reads the hosts and containers when it (re)connects, and follows these.
const HostStatusKind = "host-status"

// statusHub fans the hosts' report notices (store.StatusChannel) out to the
// open event streams. Each stream has a small buffer; a notice that does
// not fit is dropped for that stream, which catches up with the host's
// next report (a heartbeat at the latest).
type statusHub struct {
	mu   sync.Mutex
	subs map[chan string]struct{}
}

func newStatusHub() *statusHub { return &statusHub{subs: map[chan string]struct{}{}} }

func (h *statusHub) subscribe() chan string {
	ch := make(chan string, 64)
	h.mu.Lock()
	h.subs[ch] = struct{}{}
	h.mu.Unlock()
	return ch
}

func (h *statusHub) unsubscribe(ch chan string) {
	h.mu.Lock()
	delete(h.subs, ch)
	h.mu.Unlock()
}

func (h *statusHub) publish(payload string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for ch := range h.subs {
		select {
		case ch <- payload:
		default:
		}
	}
}

// hostStatusWriter sends a stream's host-status events: one when a host's
// state differs from what this stream last sent of it (heartbeats that
// change nothing send nothing).
type hostStatusWriter struct {
	last map[string]string
}

// write sends the notice payload when it changes what the stream knows.
func (hw *hostStatusWriter) write(w gin.ResponseWriter, payload string) error {
	n, ok := store.ParseStatusNotice(payload)
	if !ok {
		return nil
	}
	st := openapi.HostStatus{Host: n.Host, AppliedRevision: n.Applied, ApplyFailed: n.ApplyFailed,
		FailedContainers: n.FailedContainers, FailedAll: n.FailedAll}
	if st.FailedContainers == nil {
		st.FailedContainers = []string{}
	}
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	if hw.last == nil {
		hw.last = map[string]string{}
	}
	if hw.last[n.Host] == string(data) {
		return nil
	}
	if _, err := fmt.Fprintf(w, "event: %s\ndata: %s\n\n", HostStatusKind, data); err != nil {
		return err
	}
	hw.last[n.Host] = string(data)
	w.Flush()
	return nil
}
