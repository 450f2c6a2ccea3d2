package client

import (
	"bufio"
	"encoding/json"
	"io"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/openapi"
)

// SSEMessage is one server-sent message of GET /api/v1/events: an Event
// (Event "<kind>.<action>"), a live-only message (policy-log,
// host-status), only a resume point (ID without Data), or a keep-alive
// (neither).
type SSEMessage struct {
	ID    int64
	Event string
	Data  string
}

// ReadSSE calls fn for each message read from r until fn returns false or
// r ends; it returns the read error (nil at a clean end or when fn
// stopped).
func ReadSSE(r io.Reader, fn func(SSEMessage) bool) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	var m SSEMessage
	var data []string
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "":
			m.Data = strings.Join(data, "\n")
			if !fn(m) {
				return nil
			}
			m, data = SSEMessage{}, nil
		case strings.HasPrefix(line, ":"):
		case strings.HasPrefix(line, "id:"):
			m.ID, _ = strconv.ParseInt(strings.TrimSpace(line[3:]), 10, 64)
		case strings.HasPrefix(line, "event:"):
			m.Event = strings.TrimSpace(line[6:])
		case strings.HasPrefix(line, "data:"):
			data = append(data, strings.TrimPrefix(line[5:], " "))
		}
	}
	return sc.Err()
}

// Change decodes the message's Event: ok is false for resume points,
// keep-alives and the live-only messages (policy-log, host-status), since
// an Event's message is named "<kind>.<action>".
func (m SSEMessage) Change() (openapi.Event, bool) {
	var ev openapi.Event
	if m.Data == "" || !strings.Contains(m.Event, ".") {
		return ev, false
	}
	if err := json.Unmarshal([]byte(m.Data), &ev); err != nil {
		return ev, false
	}
	return ev, true
}
