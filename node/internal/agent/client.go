package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/switchyard/switchyard/openapi"
)

// client speaks the node protocol to the controller.
type client struct {
	base  string
	host  string
	token string
	http  *http.Client
}

// apiError is an answer other than the one expected.
type apiError struct {
	Status int
	Detail string
}

func (e *apiError) Error() string {
	switch e.Status {
	case http.StatusUnauthorized:
		return "the controller rejected the node token (401): check SWITCHYARD_NODE_TOKEN"
	case http.StatusForbidden:
		return "the node token may not act for this host (403): " + e.Detail
	}
	return fmt.Sprintf("controller answered %d: %s", e.Status, e.Detail)
}

func newClient(base, host, token string) *client {
	return &client{base: strings.TrimRight(base, "/"), host: host, token: token,
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4, IdleConnTimeout: 90 * time.Second}}}
}

func (c *client) do(ctx context.Context, method, path string, body, out any) (int, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return 0, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return 0, err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && ctx.Err() == nil {
			return 0, fmt.Errorf("controller unreachable at %s: %v", c.base, ue.Err)
		}
		return 0, err
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		return res.StatusCode, err
	}
	if res.StatusCode >= 300 {
		var p openapi.Problem
		_ = json.Unmarshal(data, &p)
		detail := p.Detail
		if detail == "" {
			detail = strings.TrimSpace(string(data))
		}
		return res.StatusCode, &apiError{Status: res.StatusCode, Detail: detail}
	}
	if out != nil && res.StatusCode != http.StatusNoContent {
		if err := json.Unmarshal(data, out); err != nil {
			return res.StatusCode, fmt.Errorf("decode answer: %w", err)
		}
	}
	return res.StatusCode, nil
}

func (c *client) register(ctx context.Context, reg openapi.NodeRegistration) (openapi.Host, error) {
	var h openapi.Host
	_, err := c.do(ctx, "POST", "/api/v1/nodes/"+url.PathEscape(c.host)+"/register", reg, &h)
	return h, err
}

// poll long-polls the program; nil with no error means nothing changed.
func (c *client) poll(ctx context.Context, revision int64, digest string, wait time.Duration) (*openapi.ProgramUpdate, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+15*time.Second)
	defer cancel()
	q := url.Values{"revision": {fmt.Sprint(revision)}, "digest": {digest}, "timeout": {wait.String()}}
	var up openapi.ProgramUpdate
	code, err := c.do(ctx, "GET", "/api/v1/nodes/"+url.PathEscape(c.host)+"/program?"+q.Encode(), nil, &up)
	if err != nil || code == http.StatusNoContent {
		return nil, err
	}
	return &up, nil
}

func (c *client) report(ctx context.Context, st openapi.NodeStatus) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := c.do(ctx, "POST", "/api/v1/nodes/"+url.PathEscape(c.host)+"/status", st, nil)
	return err
}
