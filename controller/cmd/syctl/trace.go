package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/openapi"
)

// traceCmd is `syctl trace A B PROTO[/PORT]`: POST /api/v1/traces, printed
// as a report (or the JSON answer with -o json).
func (e *env) traceCmd() *cobra.Command {
	var probe bool
	var output, network string
	var sourcePort int
	cmd := &cobra.Command{
		Use:   "trace SOURCE DESTINATION PROTOCOL[/PORT]",
		Short: "Explain why SOURCE can or cannot reach DESTINATION: intent, compiled flows, the switches, a live probe",
		Long: "Trace the first packet of a connection through intent, the compiled flows of the hosts on its way and\n" +
			"their real switches (ofproto/trace run by the agents), and with --probe send a live probe from the source.\n\n" +
			"SOURCE is a container name (or container/NAME) or an outside IPv4 address.\n" +
			"DESTINATION is a container name (or container/NAME), service/NAME, host/NAME (its published or node\n" +
			"port PORT), or an IPv4 address (a container's, a service VIP, a host's, or outside).\n" +
			"PROTOCOL is tcp/PORT, udp/PORT, sctp/PORT or icmp.",
		Example: "  syctl trace web db tcp/5432\n  syctl trace web service/api tcp/80 --probe\n" +
			"  syctl trace 192.168.200.50 host/h1 tcp/8080\n  syctl trace web 8.8.8.8 udp/53 -o json",
		Args: cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "" && output != "json" && output != "text" {
				return usagef("-o %q: want text or json", output)
			}
			req, err := traceRequest(args, network)
			if err != nil {
				return err
			}
			req.Probe, req.SourcePort = probe, sourcePort
			c, err := e.client()
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if _, err := c.Do(e.ctx, "POST", "/api/v1/traces", req, &raw); err != nil {
				return err
			}
			if output == "json" {
				return writeJSON(e.stdout, raw)
			}
			var tr openapi.Trace
			if err := json.Unmarshal(raw, &tr); err != nil {
				return err
			}
			writeTrace(e.stdout, req, &tr)
			return nil
		},
	}
	cmd.Flags().BoolVar(&probe, "probe", false, "also send a live probe from the source container (rate-limited)")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "text or json")
	cmd.Flags().StringVar(&network, "network", "", "the network of container and service names (when a name is in several)")
	cmd.Flags().IntVar(&sourcePort, "source-port", 0, "the source port to assume (default 40000)")
	return cmd
}

// traceRequest reads the three arguments.
func traceRequest(args []string, network string) (openapi.TraceRequest, error) {
	var req openapi.TraceRequest
	src, err := traceEnd(args[0], network, false)
	if err != nil {
		return req, err
	}
	dst, err := traceEnd(args[1], network, true)
	if err != nil {
		return req, err
	}
	req.Source, req.Destination = src, dst
	proto, port, hasPort := strings.Cut(args[2], "/")
	req.Protocol = strings.ToUpper(proto)
	switch {
	case req.Protocol == "ICMP" && hasPort:
		return req, usagef("icmp takes no port: %q", args[2])
	case req.Protocol == "ICMP":
	case req.Protocol != "TCP" && req.Protocol != "UDP" && req.Protocol != "SCTP":
		return req, usagef("protocol %q: want tcp/PORT, udp/PORT, sctp/PORT or icmp", args[2])
	default:
		n, err := strconv.Atoi(port)
		if !hasPort || err != nil || n < 1 || n > 65535 {
			return req, usagef("%q: want %s/PORT with a port from 1 to 65535", args[2], proto)
		}
		req.Port = n
	}
	return req, nil
}

// traceEnd reads one end: an address, KIND/NAME or a container name.
func traceEnd(s, network string, dst bool) (openapi.TraceRequestEnd, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		return openapi.TraceRequestEnd{Address: a.String()}, nil
	}
	kind, name, ok := strings.Cut(s, "/")
	if !ok {
		kind, name = "container", s
	}
	end := openapi.TraceRequestEnd{Network: network}
	switch {
	case kind == "container" || kind == "containers":
		end.Container = name
	case dst && (kind == "service" || kind == "services" || kind == "svc"):
		end.Service = name
	case dst && (kind == "host" || kind == "hosts"):
		end.Host, end.Network = name, ""
	default:
		return end, usagef("%q: want a container name, an IPv4 address%s", s, map[bool]string{true: ", service/NAME or host/NAME", false: ""}[dst])
	}
	if name == "" {
		return end, usagef("%q: no name", s)
	}
	return end, nil
}

// writeTrace prints the report.
func writeTrace(w io.Writer, req openapi.TraceRequest, tr *openapi.Trace) {
	in := &tr.Intent
	what := req.Protocol
	if req.Port != 0 {
		what += "/" + strconv.Itoa(req.Port)
	}
	fmt.Fprintf(w, "Trace %s -> %s %s (revision %d)\n", endLabel(in.Source), endLabel(in.Destination), what, tr.Revision)
	fmt.Fprintf(w, "Conclusion: %s\n", tr.Conclusion)
	p := tr.Packet
	fmt.Fprintf(w, "Packet: %s %s:%d -> %s:%d\n\n", p.Protocol, p.SrcIP, p.SrcPort, p.DstIP, p.DstPort)

	verdict := "DENIED"
	if in.Allowed {
		verdict = "ALLOWED"
	}
	fmt.Fprintf(w, "1. Intent: %s, path %s %s\n   %s\n", verdict, in.Path, strings.Join(in.Hosts, " -> "), in.Verdict)
	if s := in.Service; s != nil {
		fmt.Fprintf(w, "   service %s %s:%d -> port %d, backends:\n", s.Name, s.VIP, s.Port, s.TargetPort)
		for _, b := range s.Backends {
			mark := ""
			if b.Container == s.Chosen {
				mark = "  <- traced"
			}
			fmt.Fprintf(w, "     %-16s %-8s %s:%d weight %d usable=%v healthy=%v%s\n", b.Container, b.Host, b.IP, b.Port, b.Weight, b.Usable, b.Healthy, mark)
		}
	}
	for _, n := range in.NAT {
		fmt.Fprintf(w, "   %s on %s: %s -> %s (%s)\n", strings.ToUpper(n.Kind), orDash(n.Host), n.From, n.To, n.Why)
	}
	for _, side := range []struct {
		name string
		s    openapi.TracePolicySide
	}{{"egress", in.Egress}, {"ingress", in.Ingress}} {
		at := side.s.Container
		if at == "" {
			at = "(no container)"
		}
		fmt.Fprintf(w, "   %s at %s: %s\n", side.name, at, decisionText(side.s.Decision))
		for _, c := range side.s.Policies {
			rule, mark := c.Rule, ""
			if rule == "" {
				rule = "no rule matches"
			}
			if c.Deciding {
				mark = "  <- decides"
			}
			fmt.Fprintf(w, "     policy %s (priority %d, %s): %s%s\n", c.Policy, c.Priority, c.Action, rule, mark)
		}
	}

	fmt.Fprintln(w, "\n2. Compiled:")
	for _, h := range tr.Compiled {
		fmt.Fprintf(w, "   %s: from %s -> %s %s\n", h.Host, h.InPort, h.Verdict, h.Output)
		for _, f := range h.Flows {
			fmt.Fprintf(w, "     %2d %-16s prio %-5d %s\n", f.Table, f.TableName, f.Priority, f.Owner)
		}
	}

	fmt.Fprintln(w, "\n3. Realized:")
	for _, r := range tr.Realized {
		state := "current"
		if !r.Current {
			state = "BEHIND"
		}
		sw := "not traced"
		if s := r.Switch; s != nil {
			sw = s.Status
			if s.Status == "ok" {
				sw = fmt.Sprintf("%s (datapath actions: %s)", s.Verdict, s.DatapathActions)
			} else if s.Error != "" {
				sw += ": " + s.Error
			}
		}
		fmt.Fprintf(w, "   %s: applied revision %d, program %d (%s); switch: %s\n", r.Host, r.AppliedRevision, r.ProgramRevision, state, sw)
	}

	if l := tr.Live; l != nil {
		fmt.Fprintf(w, "\n4. Live: %s from %s in %.1f ms", l.Status, orDash(l.Host), float64(l.Micros)/1000)
		if l.Detail != "" {
			fmt.Fprintf(w, " (%s)", l.Detail)
		}
		fmt.Fprintln(w)
	}
	if tr.Disagreement {
		fmt.Fprintln(w, "\nDisagreements:")
		for _, d := range tr.Disagreements {
			fmt.Fprintf(w, "   %s on %s: %s\n", strings.Join(d.Layers, " vs "), orDash(d.Host), d.Detail)
			if d.Flow != "" {
				fmt.Fprintf(w, "     flow: %s\n", d.Flow)
			}
		}
	}
	if len(tr.Assumptions) > 0 {
		fmt.Fprintln(w, "\nAssumptions:")
		for _, a := range tr.Assumptions {
			fmt.Fprintf(w, "   - %s\n", a)
		}
	}
}

func endLabel(e openapi.TraceEnd) string {
	if e.Name != "" {
		return e.Name
	}
	return e.IP
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func decisionText(d openapi.ReachabilityDecision) string {
	verdict := "denied"
	if d.Allowed {
		verdict = "allowed"
	}
	switch d.Reason {
	case "rule":
		return fmt.Sprintf("%s by policy %s %s", verdict, d.Policy, d.Rule)
	case "isolated":
		return fmt.Sprintf("%s: isolated by policy %s (no rule matches)", verdict, d.Policy)
	case "external":
		return "not judged"
	}
	return verdict + " (" + d.Reason + ")"
}
