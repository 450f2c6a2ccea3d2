// Package cniproto is the protocol between the CNI plugin switchyard-cni and
// the node agent's CNI server (package cniserver): over a unix socket, the
// plugin writes one Request as JSON and half-closes, the server answers one
// Response as JSON and closes. One round trip per CNI verb. docs/cni.md
// documents it. It holds the types and the framing only: it must not hold
// the plugin's or the agent's logic, nor talk to the controller.
package cniproto

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"time"
)

// DefaultSocket is where the agent listens when configured to, and where the
// plugin looks when neither the network config's "socket" nor EnvSocket says
// otherwise.
const DefaultSocket = "/run/switchyard/cni.sock"

// EnvSocket names the environment variable of the socket path (the agent's
// setting; the plugin reads it too).
const EnvSocket = "SWITCHYARD_CNI_SOCKET"

// Commands, as CNI names its verbs.
const (
	Add    = "ADD"
	Del    = "DEL"
	Check  = "CHECK"
	Status = "STATUS"
	GC     = "GC"
)

// MaxMessage bounds a request or response (a GC with many attachments is the
// largest).
const MaxMessage = 4 << 20

// Request is one CNI verb as the plugin received it.
type Request struct {
	Command string `json:"command"`
	// ContainerID, Netns and IfName are CNI_CONTAINERID, CNI_NETNS and
	// CNI_IFNAME (empty for STATUS and GC).
	ContainerID string `json:"containerID,omitempty"`
	Netns       string `json:"netns,omitempty"`
	IfName      string `json:"ifName,omitempty"`
	// Config is the CNI network configuration's name; Network the
	// Switchyard network it attaches to ("network" in the config).
	Config  string `json:"config"`
	Network string `json:"network"`
	// Labels are the config's labels for the container.
	Labels map[string]string `json:"labels,omitempty"`
	// Args are CNI_ARGS (K8S_POD_NAME, K8S_POD_NAMESPACE, ...).
	Args map[string]string `json:"args,omitempty"`
	// IPs are the runtime's requested addresses (capability "ips" or
	// args.cni.ips): the first IPv4 one is used, with or without a prefix.
	IPs []string `json:"ips,omitempty"`
	// PortMappings are the capability "portMappings".
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	// ValidAttachments are cni.dev/valid-attachments (GC).
	ValidAttachments []Attachment `json:"validAttachments,omitempty"`
}

// PortMapping is one entry of the portMappings capability.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Attachment is one element of cni.dev/valid-attachments.
type Attachment struct {
	ContainerID string `json:"containerID"`
	IfName      string `json:"ifname"`
}

// Response answers a Request: Error, or for ADD and CHECK a Result.
type Response struct {
	Result *Result `json:"result,omitempty"`
	Error  *Error  `json:"error,omitempty"`
}

// Result is the attachment ADD made (CHECK verified).
type Result struct {
	// Container is the container's name at the controller.
	Container string `json:"container"`
	Interface string `json:"interface"`
	MAC       string `json:"mac"`
	MTU       int    `json:"mtu,omitempty"`
	Sandbox   string `json:"sandbox"`
	// Address is the container's address with its prefix length.
	Address     string   `json:"address"`
	Gateway     string   `json:"gateway"`
	Nameservers []string `json:"nameservers,omitempty"`
	Search      []string `json:"search,omitempty"`
}

// Error is a CNI error: Code is one of the spec's (or 100 and up, the
// plugin's own), Msg a short message, Details the longer explanation.
type Error struct {
	Code    uint   `json:"code"`
	Msg     string `json:"msg"`
	Details string `json:"details,omitempty"`
}

func (e *Error) Error() string {
	if e.Details == "" {
		return e.Msg
	}
	return e.Msg + ": " + e.Details
}

// The plugin's own error codes (the spec leaves 100 and up to plugins).
const (
	// ErrConflict: the name or address is taken at the controller.
	ErrConflict uint = 100
	// ErrAttachFailed: the host failed to attach the container.
	ErrAttachFailed uint = 101
	// ErrForbidden: the agent's node token may not do this.
	ErrForbidden uint = 102
)

// Call sends req to the server at socket and returns its response, within
// ctx. A server that cannot be reached is an error (the caller maps it to a
// CNI code).
func Call(ctx context.Context, socket string, req Request) (Response, error) {
	var res Response
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return res, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return res, fmt.Errorf("send to %s: %w", socket, err)
	}
	_ = conn.(*net.UnixConn).CloseWrite()
	if err := json.NewDecoder(io.LimitReader(conn, MaxMessage)).Decode(&res); err != nil {
		return res, fmt.Errorf("read the answer from %s: %w", socket, err)
	}
	return res, nil
}

// ReadRequest reads one request from conn (the server's side).
func ReadRequest(conn net.Conn) (Request, error) {
	var req Request
	err := json.NewDecoder(io.LimitReader(conn, MaxMessage)).Decode(&req)
	return req, err
}

// WriteResponse writes res to conn (the server's side).
func WriteResponse(conn net.Conn, res Response) error {
	return json.NewEncoder(conn).Encode(res)
}
