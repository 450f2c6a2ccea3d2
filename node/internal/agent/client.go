package agent

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

// nodeClient speaks the node protocol for one host.
type nodeClient struct {
	api  *client.Client
	host string
}

func newClient(cfg Config) *nodeClient {
	api := cfg.API
	if api == nil {
		api = client.New(cfg.ControllerURL, cfg.Token)
	}
	return &nodeClient{api: api, host: cfg.Host}
}

// explain turns a failed call into what an operator needs to read.
func (c *nodeClient) explain(err error) error {
	var ue *url.Error
	var cv *tls.CertificateVerificationError
	switch {
	case err == nil:
		return nil
	case client.StatusOf(err) == http.StatusUnauthorized:
		return fmt.Errorf("the controller rejected the node token (401): check SWITCHYARD_NODE_TOKEN: %w", err)
	case client.StatusOf(err) == http.StatusForbidden:
		return fmt.Errorf("the node token may not act for host %s (403): %w", c.host, err)
	case errors.As(err, &cv):
		return fmt.Errorf("controller at %s not trusted: %v (is SWITCHYARD_CA_FILE the CA that signs its certificate, "+
			"for the URL's host or SWITCHYARD_TLS_SERVER_NAME?)", c.api.Base, cv)
	case errors.As(err, &ue):
		return fmt.Errorf("controller unreachable at %s: %v", c.api.Base, ue.Err)
	}
	return err
}

func (c *nodeClient) path(op string) string {
	return "/api/v1/nodes/" + url.PathEscape(c.host) + "/" + op
}

func (c *nodeClient) register(ctx context.Context, reg openapi.NodeRegistration) (openapi.Host, error) {
	var h openapi.Host
	_, err := c.api.Do(ctx, "POST", c.path("register"), reg, &h)
	return h, c.explain(err)
}

// poll long-polls the program; nil with no error means nothing changed.
func (c *nodeClient) poll(ctx context.Context, revision int64, digest string, wait time.Duration) (*openapi.ProgramUpdate, error) {
	ctx, cancel := context.WithTimeout(ctx, wait+15*time.Second)
	defer cancel()
	q := url.Values{"revision": {fmt.Sprint(revision)}, "digest": {digest}, "timeout": {wait.String()}}
	var up openapi.ProgramUpdate
	code, err := c.api.Do(ctx, "GET", c.path("program")+"?"+q.Encode(), nil, &up)
	if err != nil || code == http.StatusNoContent {
		return nil, c.explain(err)
	}
	return &up, nil
}

func (c *nodeClient) report(ctx context.Context, st openapi.NodeStatus) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := c.api.Do(ctx, "POST", c.path("status"), st, nil)
	return c.explain(err)
}
