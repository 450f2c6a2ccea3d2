package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

// getFlags are get's flags (describe and delete share some).
type getFlags struct {
	output, selector, network, host string
	watch, noHeaders                bool
}

func (f *getFlags) add(cmd *cobra.Command, output bool) {
	fl := cmd.Flags()
	if output {
		fl.StringVarP(&f.output, "output", "o", "table", "output format: "+strings.Join(formats, "|"))
	}
	fl.StringVarP(&f.selector, "selector", "l", "", "label selector, e.g. app=web,tier!=db")
	fl.StringVarP(&f.network, "network", "n", "", "network of the objects (containers, services, policies)")
	fl.StringVar(&f.host, "host", "", "only containers on this host")
}

func (e *env) getCmd() *cobra.Command {
	var f getFlags
	cmd := &cobra.Command{
		Use:   "get KIND [NAME...]",
		Short: "List objects, or show some by name (kinds: " + kindList() + ")",
		Example: "  syctl get containers -l app=web -o wide\n  syctl get container web1 -n blue -o yaml\n" +
			"  syctl get services --watch",
		Args:              cobra.MinimumNArgs(1),
		ValidArgsFunction: e.completeKindAndNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkFormat(f.output); err != nil {
				return err
			}
			k, names, err := kindArgs(args)
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			return e.get(c, k, names, f)
		},
	}
	f.add(cmd, true)
	cmd.Flags().BoolVarP(&f.watch, "watch", "w", false, "after the list, print every change (from the event stream) until interrupted")
	cmd.Flags().BoolVar(&f.noHeaders, "no-headers", false, "tables without their header line")
	return cmd
}

func (e *env) get(c *client.Client, k *kind, names []string, f getFlags) error {
	if len(names) > 0 && f.selector != "" {
		return usagef("give names or -l, not both")
	}
	var from int64
	if f.watch {
		if k.immutable {
			return usagef("%s have no events: --watch does not apply", k.plural)
		}
		var err error
		if from, err = currentRevision(e.ctx, c); err != nil {
			return err
		}
	}
	var items []json.RawMessage
	if len(names) > 0 {
		for _, n := range names {
			raw, err := k.get(e.ctx, c, n, f.network)
			if err != nil {
				return err
			}
			items = append(items, raw)
		}
	} else {
		var err error
		items, err = k.list(e.ctx, c, listQuery{selector: f.selector, network: f.network, host: f.host})
		if err != nil {
			return err
		}
	}
	p := e.newPrinter(k, f.output, e.stdout)
	p.headerOut = f.noHeaders
	if !f.watch {
		return p.printList(items, len(names) == 1)
	}
	for _, it := range items {
		if err := p.print(it); err != nil {
			return err
		}
	}
	if err := p.flush(); err != nil {
		return err
	}
	return e.watch(c, k, names, f, from, p)
}

// watch prints the changes of k's objects after revision from.
func (e *env) watch(c *client.Client, k *kind, names []string, f getFlags, from int64, p *printer) error {
	sel, err := labels.Parse(f.selector)
	if err != nil {
		return usagef("selector %q: %v", f.selector, err)
	}
	want := map[string]bool{}
	for _, n := range names {
		want[n] = true
	}
	return e.follow(c, from, []string{k.name}, func(m client.SSEMessage) (bool, error) {
		ev, ok := m.Change()
		if !ok || ev.Kind != k.name {
			return true, nil
		}
		meta := metaOf(ev.Object)
		switch {
		case len(want) > 0 && !want[ev.Name] && !want[ev.ID]:
			return true, nil
		case f.network != "" && k.scoped && ev.Network != f.network:
			return true, nil
		case f.host != "" && meta.Host != f.host:
			return true, nil
		case !sel.Matches(labels.Set(meta.Labels)):
			return true, nil
		}
		if p.format == "json" {
			line, err := json.Marshal(ev)
			if err != nil {
				return false, err
			}
			_, err = fmt.Fprintf(e.stdout, "%s\n", line)
			return err == nil, err
		}
		p.prefix = strings.ToUpper(ev.Action)
		if p.format == "name" {
			p.prefix = ev.Action
		}
		if err := p.print(ev.Object); err != nil {
			return false, err
		}
		return true, p.flush()
	})
}

// follow streams events from revision from, and when the stream breaks
// (the controller restarted, the connection dropped) resumes after the last
// revision it saw, until e.ctx ends. An answer of the API (401, 410: the
// revision is no longer retained) ends it with that error.
func (e *env) follow(c *client.Client, from int64, kinds []string, fn func(client.SSEMessage) (bool, error)) error {
	wait := time.Second
	for {
		stopped := false
		err := streamEvents(e.ctx, c, from, kinds, func(m client.SSEMessage) (bool, error) {
			more, err := fn(m)
			if m.ID > from {
				from = m.ID
			}
			stopped = !more
			wait = time.Second
			return more, err
		})
		if stopped || e.ctx.Err() != nil || client.StatusOf(err) != 0 {
			return err
		}
		why := "it ended"
		if err != nil {
			why = err.Error()
		}
		fmt.Fprintf(e.stderr, "syctl: event stream lost (%s); resuming after revision %d in %s\n", oneLine(why), from, wait)
		select {
		case <-e.ctx.Done():
			return nil
		case <-time.After(wait):
		}
		wait = min(2*wait, 10*time.Second)
	}
}

func (e *env) describeCmd() *cobra.Command {
	var f getFlags
	cmd := &cobra.Command{
		Use:               "describe KIND NAME",
		Short:             "Show an object with its realization per host, endpoints, policy counters, a host's containers and recent events",
		Example:           "  syctl describe service web -n blue\n  syctl describe policy allow-web -n blue",
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: e.completeKindAndNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, name, err := oneObject("describe", args)
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			return e.describe(c, k, name, f.network)
		},
	}
	cmd.Flags().StringVarP(&f.network, "network", "n", "", "network of the object (containers, services, policies)")
	return cmd
}

// recentEvents is how many of an object's events describe shows.
const recentEvents = 10

func (e *env) describe(c *client.Client, k *kind, ref, network string) error {
	raw, err := k.get(e.ctx, c, ref, network)
	if err != nil {
		return err
	}
	y, err := yamlOf(withKind(k, raw))
	if err != nil {
		return err
	}
	w := e.stdout
	w.Write(y)
	meta := metaOf(raw)
	if k.immutable {
		return nil
	}
	if err := e.describeRealization(c, w, k, meta); err != nil {
		return err
	}
	scope := ""
	if k.scoped {
		scope = "?network=" + url.QueryEscape(meta.Network)
	}
	switch k.name {
	case "host":
		ctKind, _ := kindNamed("container")
		cts, err := ctKind.list(e.ctx, c, listQuery{host: meta.Name})
		if err != nil {
			return err
		}
		section(w, "Containers", len(cts), []string{"NAME", "NETWORK", "IP", "STATUS"}, func(row func(...string)) {
			for _, raw := range cts {
				var ct openapi.Container
				if json.Unmarshal(raw, &ct) == nil {
					row(ct.Name, ct.Network, ct.IP, ct.Status)
				}
			}
		})
	case "service":
		var eps openapi.EndpointList
		if _, err := c.Do(e.ctx, "GET", k.path()+"/"+url.PathEscape(meta.ID)+"/endpoints"+scope, nil, &eps); err != nil {
			return err
		}
		sort.Slice(eps.Items, func(i, j int) bool { return eps.Items[i].Container < eps.Items[j].Container })
		section(w, "Endpoints", len(eps.Items), []string{"CONTAINER", "HOST", "ADDRESS", "PORTS", "WEIGHT", "HEALTH", "REASON"},
			func(row func(...string)) {
				for _, ep := range eps.Items {
					var ports []string
					for _, p := range ep.Ports {
						ports = append(ports, strconv.Itoa(p.Port)+"/"+p.Protocol)
					}
					row(ep.Container, ep.Host, ep.Address, strings.Join(ports, ","), strconv.Itoa(ep.Weight), ep.Health, orNone(ep.Reason))
				}
			})
	case "policy":
		var st openapi.PolicyStats
		if _, err := c.Do(e.ctx, "GET", k.path()+"/"+url.PathEscape(meta.ID)+"/stats"+scope, nil, &st); err != nil {
			return err
		}
		section(w, "Counters", len(st.Rules), []string{"RULE", "PACKETS", "BYTES", "CONNECTIONS", "HOSTS"},
			func(row func(...string)) {
				for _, r := range st.Rules {
					row(r.Rule, rev(r.Packets), rev(r.Bytes), rev(r.Connections), strconv.Itoa(len(r.Hosts)))
				}
			})
	}
	// Every event of the object is at or before its revision (its last change).
	evs, err := pastEvents(e.ctx, c, []string{k.name}, meta.Revision, func(ev openapi.Event) bool { return ev.ID == meta.ID }, recentEvents)
	if err != nil {
		return err
	}
	section(w, "Events", len(evs), []string{"REVISION", "ACTION", "AT"}, func(row func(...string)) {
		for _, ev := range evs {
			row(rev(ev.Revision), ev.Action, ev.At.UTC().Format("2006-01-02T15:04:05Z"))
		}
	})
	return nil
}

// describeRealization shows, for each host the object's program reaches,
// whether that host has applied the object's revision.
func (e *env) describeRealization(c *client.Client, w io.Writer, k *kind, meta objMeta) error {
	hosts, err := hostsReaching(e.ctx, c, k, meta)
	if err != nil {
		return err
	}
	section(w, "Realization", len(hosts), []string{"HOST", "STATUS", "APPLIED", "REALIZED"}, func(row func(...string)) {
		for _, h := range hosts {
			row(h.Name, h.Status, rev(h.AppliedRevision), realizedOn(k, meta, h))
		}
	})
	return nil
}

// realizedOn says whether h has applied the object's revision.
func realizedOn(k *kind, meta objMeta, h openapi.Host) string {
	switch {
	case h.Status != openapi.HostReady:
		return "no (host " + h.Status + ")"
	case k.name == "host":
		return yesNo(h.Realized)
	case k.name == "container" && meta.Status != openapi.ContainerRunning:
		return "no (" + meta.Status + ")"
	}
	return yesNo(h.AppliedRevision >= meta.Revision)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

// section prints a titled table, or "<none>".
func section(w io.Writer, title string, n int, head []string, rows func(func(...string))) {
	fmt.Fprintf(w, "\n%s:", title)
	if n == 0 {
		fmt.Fprintln(w, " <none>")
		return
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	fmt.Fprintln(tw, "  "+strings.Join(head, "\t"))
	rows(func(cols ...string) { fmt.Fprintln(tw, "  "+strings.Join(cols, "\t")) })
	tw.Flush()
}
