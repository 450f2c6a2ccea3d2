package health

import (
	"context"
	"net"

	"github.com/switchyard/switchyard/node/internal/link"
)

// dialIn connects to addr with a socket created inside the network
// namespace at nsPath ("" = the agent's own).
func dialIn(ctx context.Context, nsPath, network, addr string) (net.Conn, error) {
	var d net.Dialer
	if nsPath == "" {
		return d.DialContext(ctx, network, addr)
	}
	var c net.Conn
	err := link.InNetnsPath(nsPath, func() error {
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	if err != nil && c != nil {
		c.Close()
		c = nil
	}
	return c, err
}
