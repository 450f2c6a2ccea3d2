// Command switchyard-cni is Switchyard's CNI 1.1 plugin (ADD, DEL, CHECK,
// STATUS, GC, VERSION). It parses what the runtime gives it (network
// config, CNI_* variables, runtime config) and hands each verb to the local
// node agent over a unix socket in one round trip (package cniproto); the
// agent does the work and answers the result or a CNI error. docs/cni.md
// describes it.
//
// It must not talk to the controller, touch OVS, links or namespaces, nor
// retry or poll: the agent decides, the runtime retries (error 11).
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/containernetworking/cni/pkg/skel"
	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"
	"github.com/containernetworking/cni/pkg/version"

	"github.com/switchyard/switchyard/node/internal/cniproto"
)

// NetConf is the plugin's network configuration.
type NetConf struct {
	types.PluginConf
	// Network is the Switchyard network the container joins.
	Network string            `json:"network"`
	Labels  map[string]string `json:"labels,omitempty"`
	// Socket is the agent's socket (default: $SWITCHYARD_CNI_SOCKET, then
	// cniproto.DefaultSocket).
	Socket string `json:"socket,omitempty"`
	// Timeout bounds one call to the agent (default 2m: ADD waits until the
	// container is realized).
	Timeout string `json:"timeout,omitempty"`

	RuntimeConfig struct {
		PortMappings []cniproto.PortMapping `json:"portMappings,omitempty"`
		IPs          []string               `json:"ips,omitempty"`
	} `json:"runtimeConfig,omitempty"`
	Args struct {
		CNI struct {
			IPs []string `json:"ips,omitempty"`
		} `json:"cni,omitempty"`
	} `json:"args,omitempty"`
}

func main() {
	skel.PluginMainFuncs(skel.CNIFuncs{Add: cmdAdd, Del: cmdDel, Check: cmdCheck, Status: cmdStatus, GC: cmdGC},
		version.PluginSupports("0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"), "CNI plugin switchyard-cni (Switchyard node agent client)")
}

func cmdAdd(args *skel.CmdArgs) error {
	conf, res, err := call(cniproto.Add, args, os.Getenv)
	if err != nil {
		return err
	}
	r, err := toCurrent(conf, res.Result)
	if err != nil {
		return err
	}
	return types.PrintResult(r, conf.CNIVersion)
}

func cmdDel(args *skel.CmdArgs) error {
	_, _, err := call(cniproto.Del, args, os.Getenv)
	return err
}

func cmdCheck(args *skel.CmdArgs) error {
	conf, res, err := call(cniproto.Check, args, os.Getenv)
	if err != nil {
		return err
	}
	return checkPrev(conf, res.Result)
}

func cmdStatus(args *skel.CmdArgs) error {
	_, _, err := call(cniproto.Status, args, os.Getenv)
	return err
}

func cmdGC(args *skel.CmdArgs) error {
	_, _, err := call(cniproto.GC, args, os.Getenv)
	return err
}

// parseConf reads the network config and checks what every verb needs.
func parseConf(data []byte) (*NetConf, error) {
	conf := &NetConf{}
	if err := json.Unmarshal(data, conf); err != nil {
		return nil, types.NewError(types.ErrDecodingFailure, "cannot decode the network config", err.Error())
	}
	if conf.Network == "" {
		return nil, types.NewError(types.ErrInvalidNetworkConfig, "the network config has no \"network\"",
			"name the Switchyard network to attach to, e.g. \"network\": \"blue\"")
	}
	if conf.RawPrevResult != nil {
		if err := version.ParsePrevResult(&conf.PluginConf); err != nil {
			return nil, types.NewError(types.ErrDecodingFailure, "cannot decode prevResult", err.Error())
		}
	}
	return conf, nil
}

// request builds the agent's request for command from the runtime's input.
func request(command string, conf *NetConf, args *skel.CmdArgs) (cniproto.Request, error) {
	req := cniproto.Request{Command: command, ContainerID: args.ContainerID, Netns: args.Netns, IfName: args.IfName,
		Config: conf.Name, Network: conf.Network, Labels: conf.Labels,
		IPs: append(append([]string(nil), conf.RuntimeConfig.IPs...), conf.Args.CNI.IPs...), PortMappings: conf.RuntimeConfig.PortMappings}
	for _, a := range conf.ValidAttachments {
		req.ValidAttachments = append(req.ValidAttachments, cniproto.Attachment{ContainerID: a.ContainerID, IfName: a.IfName})
	}
	if args.Args != "" {
		req.Args = map[string]string{}
		for _, kv := range strings.Split(args.Args, ";") {
			k, v, ok := strings.Cut(kv, "=")
			if !ok || k == "" {
				return req, types.NewError(types.ErrInvalidEnvironmentVariables, "CNI_ARGS is malformed",
					fmt.Sprintf("%q is not KEY=VALUE", kv))
			}
			req.Args[k] = v
		}
	}
	return req, nil
}

// socket is where the agent listens: the config's, the environment's, or
// the default.
func socket(conf *NetConf, getenv func(string) string) string {
	switch {
	case conf.Socket != "":
		return conf.Socket
	case getenv(cniproto.EnvSocket) != "":
		return getenv(cniproto.EnvSocket)
	}
	return cniproto.DefaultSocket
}

// call sends one verb to the agent and turns its answer into a CNI error
// or a response.
func call(command string, args *skel.CmdArgs, getenv func(string) string) (*NetConf, cniproto.Response, error) {
	var res cniproto.Response
	conf, err := parseConf(args.StdinData)
	if err != nil {
		return nil, res, err
	}
	req, err := request(command, conf, args)
	if err != nil {
		return nil, res, err
	}
	timeout := 2 * time.Minute
	if conf.Timeout != "" {
		if timeout, err = time.ParseDuration(conf.Timeout); err != nil || timeout <= 0 {
			return nil, res, types.NewError(types.ErrInvalidNetworkConfig, "bad \"timeout\" in the network config",
				fmt.Sprintf("%q: want a duration such as 30s", conf.Timeout))
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	sock := socket(conf, getenv)
	res, err = cniproto.Call(ctx, sock, req)
	if err != nil {
		return nil, res, unreachable(sock, err)
	}
	if res.Error != nil {
		return nil, res, types.NewError(res.Error.Code, res.Error.Msg, res.Error.Details)
	}
	if (command == cniproto.Add || command == cniproto.Check) && res.Result == nil {
		return nil, res, types.NewError(types.ErrInternal, "the agent answered no result", "agent at "+sock)
	}
	return conf, res, nil
}

// unreachable explains an agent that did not answer: not running (50,
// plugin not available) or too slow (11, try again later).
func unreachable(sock string, err error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return types.NewError(types.ErrTryAgainLater, "the Switchyard agent did not answer in time: try again later",
			fmt.Sprintf("socket %s: %v", sock, err))
	}
	return types.NewError(types.ErrPluginNotAvailable, "the Switchyard agent is not reachable",
		fmt.Sprintf("socket %s: %v (is switchyard-agent running with SWITCHYARD_CNI_SOCKET=%s?)", sock, err, sock))
}

// toCurrent turns the agent's result into a CNI 1.x result.
func toCurrent(conf *NetConf, r *cniproto.Result) (*current.Result, error) {
	ip, ipnet, err := net.ParseCIDR(r.Address)
	gw := net.ParseIP(r.Gateway)
	if err != nil || gw == nil {
		return nil, types.NewError(types.ErrInternal, "the agent answered a bad address",
			fmt.Sprintf("address %q gateway %q", r.Address, r.Gateway))
	}
	ipnet.IP = ip
	idx := 0
	_, def, _ := net.ParseCIDR("0.0.0.0/0")
	return &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{{Name: r.Interface, Mac: r.MAC, Mtu: r.MTU, Sandbox: r.Sandbox}},
		IPs:        []*current.IPConfig{{Interface: &idx, Address: *ipnet, Gateway: gw}},
		Routes:     []*types.Route{{Dst: *def, GW: gw}},
		DNS:        types.DNS{Nameservers: r.Nameservers, Search: r.Search},
	}, nil
}

// checkPrev compares the runtime's prevResult (what ADD answered) with what
// the agent verified now.
func checkPrev(conf *NetConf, r *cniproto.Result) error {
	if conf.PrevResult == nil {
		return nil
	}
	prev, err := current.NewResultFromResult(conf.PrevResult)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, "cannot convert prevResult", err.Error())
	}
	for _, ip := range prev.IPs {
		if ip.Address.String() == r.Address {
			return nil
		}
	}
	var had []string
	for _, ip := range prev.IPs {
		had = append(had, ip.Address.String())
	}
	return types.NewError(types.ErrInternal, "the container's address changed",
		fmt.Sprintf("prevResult has %v, the container has %s", had, r.Address))
}
