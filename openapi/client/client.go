// Package client is a small client of Switchyard's REST API and node
// protocol: JSON bodies, a bearer token, 2xx answers decoded, and every other
// answer returned as an *Error carrying its problem+json body. The node
// agent, the demo lab and the tests use it. NewSecure (tls.go) applies the
// transport rules every client follows: https:// verified against a CA,
// plain http:// only to loopback unless asked for. It must not hold domain
// logic: callers build paths and bodies from the contract's types.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// Client talks to one controller.
type Client struct {
	// Base is the controller's URL, e.g. http://127.0.0.1:8080.
	Base  string
	Token string
	HTTP  *http.Client
}

// New returns a client with its own connection pool and no overall timeout
// (long-polls set theirs through the context).
func New(base, token string) *Client {
	return &Client{Base: strings.TrimRight(base, "/"), Token: token,
		HTTP: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16, IdleConnTimeout: 90 * time.Second}}}
}

// Error is an answer outside 2xx.
type Error struct {
	Status  int
	Problem openapi.Problem // zero when the body was not problem+json
	Body    string
}

// Error shows the whole body: a problem's extensions (such as the hosts
// still behind a realization wait) matter as much as its detail.
func (e *Error) Error() string { return fmt.Sprintf("status %d: %s", e.Status, e.Body) }

// StatusOf is the HTTP status of an *Error in err's chain, 0 otherwise.
func StatusOf(err error) int {
	var e *Error
	if errors.As(err, &e) {
		return e.Status
	}
	return 0
}

// Do sends body (when not nil) as JSON and decodes a 2xx answer into out
// (when not nil). It returns the HTTP status (0 when no answer came). A
// write refused by the controller's admission control (429, problem type
// overloaded: the write did not run) is sent again after its Retry-After,
// up to OverloadRetries times.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) (int, error) {
	var b []byte
	if body != nil {
		var err error
		if b, err = json.Marshal(body); err != nil {
			return 0, err
		}
	}
	for try := 0; ; try++ {
		code, wait, err := c.do(ctx, method, path, b, body != nil, out)
		if wait <= 0 || try >= OverloadRetries {
			return code, err
		}
		select {
		case <-ctx.Done():
			return code, err
		case <-time.After(wait):
		}
	}
}

// OverloadRetries is how many times Do sends a write again that admission
// control refused.
const OverloadRetries = 5

// overloadedType is the problem type of admission control's refusal.
const overloadedType = "/problems/overloaded"

// do is one request; wait > 0 asks Do to send it again after wait.
func (c *Client) do(ctx context.Context, method, path string, b []byte, hasBody bool, out any) (code int, wait time.Duration, err error) {
	var rd io.Reader
	if hasBody {
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.Base+path, rd)
	if err != nil {
		return 0, 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	if hasBody {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.HTTP.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, 0, err
	}
	if res.StatusCode/100 != 2 {
		e := &Error{Status: res.StatusCode, Body: strings.TrimSpace(string(data))}
		_ = json.Unmarshal(data, &e.Problem)
		if res.StatusCode == http.StatusTooManyRequests && strings.HasSuffix(e.Problem.Type, overloadedType) {
			wait = time.Second
			if s, err := strconv.Atoi(res.Header.Get("Retry-After")); err == nil && s > 0 && s <= 30 {
				wait = time.Duration(s) * time.Second
			}
		}
		return res.StatusCode, wait, e
	}
	if out != nil && len(data) > 0 {
		if err := json.Unmarshal(data, out); err != nil {
			return res.StatusCode, 0, fmt.Errorf("decode answer to %s %s: %w", method, path, err)
		}
	}
	return res.StatusCode, 0, nil
}
