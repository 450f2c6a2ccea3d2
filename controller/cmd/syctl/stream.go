package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

// streamEvents reads GET /api/v1/events from since (-1: every retained
// event) for kinds (nil: all) and calls fn for each message until fn
// returns false, the stream ends or ctx is done.
func streamEvents(ctx context.Context, c *client.Client, since int64, kinds []string, fn func(client.SSEMessage) (bool, error)) error {
	v := url.Values{}
	if since >= 0 {
		v.Set("since", strconv.FormatInt(since, 10))
	}
	if len(kinds) > 0 {
		v.Set("kinds", strings.Join(kinds, ","))
	}
	path := "/api/v1/events"
	if len(v) > 0 {
		path += "?" + v.Encode()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := newRequest(ctx, c, "GET", path)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "text/event-stream")
	res, err := c.HTTP.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer res.Body.Close()
	if res.StatusCode != 200 {
		body, _ := io.ReadAll(res.Body)
		e := &client.Error{Status: res.StatusCode, Body: strings.TrimSpace(string(body))}
		_ = json.Unmarshal(body, &e.Problem)
		return fmt.Errorf("events: %w", e)
	}
	var ferr error
	err = client.ReadSSE(res.Body, func(m client.SSEMessage) bool {
		more, err := fn(m)
		ferr = err
		return err == nil && more
	})
	if ferr != nil {
		return ferr
	}
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("events: %w", err)
	}
	return nil
}

// currentRevision is GET /api/v1/revision.
func currentRevision(ctx context.Context, c *client.Client) (int64, error) {
	var r struct {
		Revision int64 `json:"revision"`
	}
	_, err := c.Do(ctx, "GET", "/api/v1/revision", nil, &r)
	return r.Revision, err
}

// replayTimeout bounds a replay of past events.
const replayTimeout = 10 * time.Second

// pastEvents replays the retained events of kinds up to revision upTo (0:
// the current one): filter picks the ones kept, at most last (0: all) of
// the newest.
func pastEvents(ctx context.Context, c *client.Client, kinds []string, upTo int64, filter func(openapi.Event) bool, last int) ([]openapi.Event, error) {
	if upTo <= 0 {
		var err error
		if upTo, err = currentRevision(ctx, c); err != nil {
			return nil, err
		}
	}
	var out []openapi.Event
	if upTo == 0 {
		return nil, nil
	}
	// The stream sends a resume point at the end of its replay; should it
	// not, what was replayed by then is the answer.
	ctx, cancel := context.WithTimeout(ctx, replayTimeout)
	defer cancel()
	err := streamEvents(ctx, c, -1, kinds, func(m client.SSEMessage) (bool, error) {
		if ev, ok := m.Change(); ok && ev.Revision <= upTo && filter(ev) {
			out = append(out, ev)
			if last > 0 && len(out) > last {
				out = out[1:]
			}
		}
		return m.ID < upTo, nil
	})
	return out, err
}
