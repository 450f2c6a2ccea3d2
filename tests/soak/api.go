package soak

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sync"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
	"github.com/switchyard/switchyard/tests/cluster"
)

// api calls the controller the soak currently talks to (a replica may be
// killed: setBase follows the switch), as admin, from any goroutine.
type api struct {
	mu   sync.Mutex
	base string
	http *http.Client
}

func newAPI(base string) *api {
	return &api{base: base, http: &http.Client{Timeout: 60 * time.Second}}
}

func (a *api) setBase(b string) { a.mu.Lock(); a.base = b; a.mu.Unlock() }

func (a *api) Base() string { a.mu.Lock(); defer a.mu.Unlock(); return a.base }

// do is one call; out, when not nil, receives the JSON answer.
func (a *api) do(ctx context.Context, method, path string, body, out any) (int, error) {
	return a.as(ctx, cluster.AdminToken, method, path, body, out)
}

// as is do with another token (a node's, to read its program).
func (a *api) as(ctx context.Context, token, method, path string, body, out any) (int, error) {
	c := client.Client{Base: a.Base(), Token: token, HTTP: a.http}
	code, err := c.Do(ctx, method, path, body, out)
	if err != nil {
		return code, fmt.Errorf("%s %s: %w", method, path, err)
	}
	return code, nil
}

// retryable says whether an answer may come out right later: no answer at
// all, or a 5xx (PostgreSQL down, a replica going away, a realized wait
// that timed out).
func retryable(code int, err error) bool {
	return err != nil && (code == 0 || code >= 500)
}

// doRetry is do, retried with backoff while the answer is retryable, for at
// most d; it returns the last answer and how many retries it took.
func (a *api) doRetry(d time.Duration, method, path string, body, out any) (int, int, error) {
	deadline := time.Now().Add(d)
	backoff := 100 * time.Millisecond
	for retries := 0; ; retries++ {
		ctx, cancel := context.WithTimeout(context.Background(), 45*time.Second)
		code, err := a.do(ctx, method, path, body, out)
		cancel()
		if !retryable(code, err) || time.Now().Add(backoff).After(deadline) {
			return code, retries, err
		}
		time.Sleep(backoff)
		backoff = min(2*backoff, 2*time.Second)
	}
}

// list reads every item of a collection (following continue tokens).
func list[T any](a *api, path string) ([]T, error) {
	var all []T
	cont := ""
	for {
		p := path + "?limit=500"
		if cont != "" {
			p += "&continue=" + url.QueryEscape(cont)
		}
		var l openapi.List[T]
		code, _, err := a.doRetry(30*time.Second, "GET", p, nil, &l)
		if err != nil || code != 200 {
			return nil, errors.Join(fmt.Errorf("list %s: %d", path, code), err)
		}
		all = append(all, l.Items...)
		if l.Continue == "" {
			return all, nil
		}
		cont = l.Continue
	}
}
