package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

// api is the demo's client of the controller's REST API, as admin.
type api struct{ c *client.Client }

// status returns the HTTP status of a failed call, 0 for other errors.
func status(err error) int { return client.StatusOf(err) }

// call sends body as JSON and decodes a 2xx answer into out (when not nil).
func (a *api) call(ctx context.Context, method, path string, body, out any) error {
	_, err := a.c.Do(ctx, method, path, body, out)
	return err
}

// poll calls f every 200 ms until it returns nil, ctx ends or timeout passes.
func poll(ctx context.Context, timeout time.Duration, f func() error) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for {
		err := f()
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("after %s: %w", timeout, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// waitReady waits until every named host reports Ready.
func (a *api) waitReady(ctx context.Context, hosts []string, timeout time.Duration) error {
	return poll(ctx, timeout, func() error {
		for _, name := range hosts {
			var h openapi.Host
			if err := a.call(ctx, "GET", "/api/v1/hosts/"+url.PathEscape(name), nil, &h); err != nil {
				return fmt.Errorf("host %s: %w", name, err)
			}
			if h.Status != openapi.HostReady {
				return fmt.Errorf("host %s is %s", name, h.Status)
			}
		}
		return nil
	})
}

// network creates a network, or takes the existing one of that name.
func (a *api) network(ctx context.Context, name, cidr string) (openapi.Network, error) {
	var n openapi.Network
	err := a.call(ctx, "POST", "/api/v1/networks", map[string]any{"name": name, "cidr": cidr}, &n)
	if status(err) == http.StatusConflict {
		if gerr := a.call(ctx, "GET", "/api/v1/networks/"+url.PathEscape(name), nil, &n); gerr != nil {
			return n, fmt.Errorf("network %s: %w (and it does not exist: %v)", name, err, gerr)
		}
		return n, nil
	}
	return n, err
}

// container creates a container (or takes the existing one of that name on
// that network) and waits until it is running.
func (a *api) container(ctx context.Context, name, network, host string, labels map[string]string) (openapi.Container, error) {
	var c openapi.Container
	body := map[string]any{"name": name, "network": network, "host": host, "labels": labels}
	err := a.call(ctx, "POST", "/api/v1/containers?wait=realized&timeout=30s", body, &c)
	switch status(err) {
	case 0, http.StatusGatewayTimeout, http.StatusConflict:
		// Created (realized or not yet), or there from an earlier run: the
		// status below says whether it runs.
	default:
		return c, fmt.Errorf("container %s: %w", name, err)
	}
	path := "/api/v1/containers/" + url.PathEscape(name) + "?network=" + url.QueryEscape(network)
	err = poll(ctx, 60*time.Second, func() error {
		if err := a.call(ctx, "GET", path, nil, &c); err != nil {
			return err
		}
		if c.Status != openapi.ContainerRunning {
			return fmt.Errorf("status %s %s", c.Status, c.StatusDetail)
		}
		return nil
	})
	if err != nil {
		return c, fmt.Errorf("container %s: %w", name, err)
	}
	return c, nil
}

// service creates a service (or takes the existing one of that name on
// that network, from an earlier run, as it is) and returns it as stored.
func (a *api) service(ctx context.Context, body map[string]any) (openapi.Service, error) {
	var s openapi.Service
	name, network := body["name"].(string), body["network"].(string)
	err := a.call(ctx, "POST", "/api/v1/services?wait=realized&timeout=30s", body, nil)
	switch status(err) {
	case 0, http.StatusGatewayTimeout, http.StatusConflict:
		// Created (realized or not yet), or there from an earlier run.
	default:
		return s, fmt.Errorf("service %s: %w", name, err)
	}
	path := "/api/v1/services/" + url.PathEscape(name) + "?network=" + url.QueryEscape(network)
	if err := a.call(ctx, "GET", path, nil, &s); err != nil {
		return s, fmt.Errorf("service %s: %w", name, err)
	}
	return s, nil
}

// createToken makes a node token for host and returns its secret.
func (a *api) createToken(ctx context.Context, name, host string) (openapi.Token, error) {
	var t openapi.Token
	err := a.call(ctx, "POST", "/api/v1/tokens", map[string]any{"name": name, "role": "node", "host": host}, &t)
	return t, err
}

// tokens lists every token (without secrets).
func (a *api) tokens(ctx context.Context) ([]openapi.Token, error) {
	var l openapi.List[openapi.Token]
	err := a.call(ctx, "GET", "/api/v1/tokens", nil, &l)
	return l.Items, err
}

// revoke revokes a token by id.
func (a *api) revoke(ctx context.Context, id string) error {
	return a.call(ctx, "DELETE", "/api/v1/tokens/"+url.PathEscape(id), nil, nil)
}
