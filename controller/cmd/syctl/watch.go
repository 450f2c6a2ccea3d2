package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

func (e *env) waitCmd() *cobra.Command {
	var forCond, network string
	var timeout time.Duration
	cmd := &cobra.Command{
		Use:   "wait KIND NAME --for=realized|deleted",
		Short: "Wait until an object is realized on every host it reaches, or deleted",
		Long: "realized: a container is running; a host has applied its program; a network, service or\n" +
			"policy has been applied by every Ready host. Driven by the event stream, and a look every\n" +
			"0.5 s for what the stream does not carry (a container turning running, a host applying);\n" +
			"exits 1 when --timeout passes, and at once when a container failed.",
		Example:           "  syctl wait container web1 -n blue --for=realized --timeout=30s",
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: e.completeKindAndNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, name, err := oneObject("wait", args)
			if err != nil {
				return err
			}
			if forCond != "realized" && forCond != "deleted" {
				return usagef("--for must be realized or deleted")
			}
			if k.immutable {
				return usagef("%s are not realized", k.plural)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(e.ctx, timeout)
			defer cancel()
			done, err := e.waitFor(ctx, c, k, name, network, forCond)
			if err != nil {
				return err
			}
			if !done {
				return fmt.Errorf("timed out after %s waiting for %s/%s to be %s", timeout, k.name, name, forCond)
			}
			fmt.Fprintf(e.stdout, "%s/%s %s\n", k.name, name, forCond)
			return nil
		},
	}
	cmd.Flags().StringVar(&forCond, "for", "realized", "realized or deleted")
	cmd.Flags().StringVarP(&network, "network", "n", "", "network of the object")
	cmd.Flags().DurationVar(&timeout, "timeout", 60*time.Second, "how long to wait")
	return cmd
}

// waitFor checks the condition, then again after each event of the
// object's kind or of hosts, and every recheck besides (the stream carries
// no event when only a container's status or a host's applied revision
// moves), until it holds (true) or ctx ends (false).
func (e *env) waitFor(ctx context.Context, c *client.Client, k *kind, ref, network, cond string) (bool, error) {
	from, err := currentRevision(ctx, c)
	if err != nil {
		return false, err
	}
	check := func(ctx context.Context) (bool, error) {
		raw, err := k.get(ctx, c, ref, network)
		if exitCode(err) == exitNotFound {
			if cond == "deleted" {
				return true, nil
			}
			return false, err
		}
		if err != nil || cond == "deleted" {
			return false, err
		}
		return e.realized(ctx, c, k, metaOf(raw))
	}
	ok, err := check(ctx)
	if ok || err != nil {
		return ok, err
	}
	// The first verdict (true, or an error) from the stream or the
	// ticker ends the wait.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	var res struct {
		ok  bool
		err error
	}
	decide := func(ok bool, err error) bool {
		if wctx.Err() != nil && !ok {
			return true // ended elsewhere; a cancelled check says nothing
		}
		if !ok && err == nil {
			return false
		}
		mu.Lock()
		defer mu.Unlock()
		if !res.ok && res.err == nil {
			res.ok, res.err = ok, err
		}
		cancel()
		return true
	}
	go func() {
		t := time.NewTicker(recheck)
		defer t.Stop()
		for {
			select {
			case <-wctx.Done():
				return
			case <-t.C:
				if decide(check(wctx)) {
					return
				}
			}
		}
	}()
	serr := streamEvents(wctx, c, from, []string{"host", k.name}, func(m client.SSEMessage) (bool, error) {
		if m.Data == "" && m.ID == 0 {
			return true, nil // keep-alive
		}
		return !decide(check(wctx)), nil
	})
	mu.Lock()
	defer mu.Unlock()
	switch {
	case res.ok || res.err != nil:
		return res.ok, res.err
	case ctx.Err() != nil:
		return false, nil
	}
	return false, serr
}

// recheck is how often wait looks again between events.
const recheck = 500 * time.Millisecond

// hostsReaching are the hosts whose program the object is part of: a
// container's host, a host itself, else every host.
func hostsReaching(ctx context.Context, c *client.Client, k *kind, meta objMeta) ([]openapi.Host, error) {
	hostKind, _ := kindNamed("host")
	var raws []json.RawMessage
	switch k.name {
	case "host", "container":
		ref := meta.Host
		if k.name == "host" {
			ref = meta.ID
		}
		raw, err := hostKind.get(ctx, c, ref, "")
		if err != nil {
			return nil, err
		}
		raws = []json.RawMessage{raw}
	default:
		var err error
		if raws, err = hostKind.list(ctx, c, listQuery{}); err != nil {
			return nil, err
		}
	}
	hosts := make([]openapi.Host, len(raws))
	for i, raw := range raws {
		if err := json.Unmarshal(raw, &hosts[i]); err != nil {
			return nil, err
		}
	}
	return hosts, nil
}

// realized is describe's verdict over every host the object reaches.
func (e *env) realized(ctx context.Context, c *client.Client, k *kind, meta objMeta) (bool, error) {
	if k.name == "container" && meta.Status == openapi.ContainerFailed {
		return false, fmt.Errorf("container %s failed: %s", meta.Name, meta.Detail)
	}
	hosts, err := hostsReaching(ctx, c, k, meta)
	if err != nil {
		return false, err
	}
	for _, h := range hosts {
		v := realizedOn(k, meta, h)
		if v == "yes" || (k.name != "container" && k.name != "host" && h.Status != openapi.HostReady) {
			continue
		}
		return false, nil
	}
	return true, nil
}

func (e *env) moveCmd() *cobra.Command {
	var f writeFlags
	var network, to string
	cmd := &cobra.Command{
		Use:               "move [container] NAME --to HOST",
		Short:             "Move a container to another host, keeping its IP, MAC and published ports",
		Example:           "  syctl move web1 -n blue --to h2 --wait",
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: e.completeKindAndNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 2 {
				if k, err := kindNamed(args[0]); err != nil || k.name != "container" {
					return usagef("only containers move")
				}
				args = args[1:]
			}
			if to == "" {
				return usagef("move needs --to HOST")
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			k, _ := kindNamed("container")
			raw, err := k.get(e.ctx, c, args[0], network)
			if err != nil {
				return err
			}
			m := metaOf(raw)
			path := k.path() + "/" + url.PathEscape(m.ID) + "/move" + f.query("?")
			if err := e.write(c, "POST", path, m.Revision, map[string]string{"host": to}, nil); err != nil {
				return fmt.Errorf("move container/%s: %w", m.Name, err)
			}
			fmt.Fprintf(e.stdout, "container/%s moved from %s to %s\n", m.Name, m.Host, to)
			return nil
		},
	}
	cmd.Flags().StringVar(&to, "to", "", "the target host")
	cmd.Flags().StringVarP(&network, "network", "n", "", "network of the container")
	f.addWait(cmd)
	return cmd
}

func (e *env) eventsCmd() *cobra.Command {
	var kindsFlag []string
	var since int64
	var follow bool
	var output string
	cmd := &cobra.Command{
		Use:     "events",
		Short:   "Print the retained events (changes), and with --follow the live ones",
		Example: "  syctl events --kinds container,service\n  syctl events --since 120 --follow -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return usagef("events prints -o table or json")
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			upTo, err := currentRevision(e.ctx, c)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 3, ' ', 0)
			if output == "table" {
				fmt.Fprintln(tw, "REVISION\tKIND\tACTION\tNAME\tNETWORK\tAT")
			}
			if !follow && (upTo == 0 || since >= upTo) {
				return tw.Flush()
			}
			stream := streamEvents
			if follow {
				stream = func(_ context.Context, c *client.Client, since int64, kinds []string, fn func(client.SSEMessage) (bool, error)) error {
					return e.follow(c, since, kinds, fn)
				}
			}
			err = stream(e.ctx, c, since, kindsFlag, func(m client.SSEMessage) (bool, error) {
				if ev, ok := m.Change(); ok {
					if output == "json" {
						line, _ := json.Marshal(ev)
						fmt.Fprintf(e.stdout, "%s\n", line)
					} else {
						fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", ev.Revision, ev.Kind, ev.Action, ev.Name,
							orNone(ev.Network), ev.At.UTC().Format(time.RFC3339))
					}
				}
				if follow {
					if err := tw.Flush(); err != nil {
						return false, err
					}
				}
				return follow || m.ID < upTo, nil
			})
			if ferr := tw.Flush(); err == nil {
				err = ferr
			}
			return err
		},
	}
	cmd.Flags().StringSliceVar(&kindsFlag, "kinds", nil, "only these kinds (host,network,container,service,policy,endpoint)")
	cmd.Flags().Int64Var(&since, "since", -1, "only events after this revision (default: every retained one)")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "go on with live events until interrupted")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json (one Event per line)")
	return cmd
}

func (e *env) auditCmd() *cobra.Command {
	var kindF, actor, output string
	var limit int
	cmd := &cobra.Command{
		Use:     "audit",
		Short:   "Print the audit log (admin): who wrote what, oldest first",
		Example: "  syctl audit --kind container --actor ci",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if output != "table" && output != "json" {
				return usagef("audit prints -o table or json")
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			v := url.Values{"limit": {"1000"}}
			if kindF != "" {
				v.Set("kind", kindF)
			}
			if actor != "" {
				v.Set("actor", actor)
			}
			var all []openapi.AuditEntry
			for {
				var page openapi.List[openapi.AuditEntry]
				if _, err := c.Do(e.ctx, "GET", "/api/v1/audit?"+v.Encode(), nil, &page); err != nil {
					return fmt.Errorf("audit: %w", err)
				}
				all = append(all, page.Items...)
				if page.Continue == "" || (limit > 0 && len(all) >= limit) {
					break
				}
				v.Set("continue", page.Continue)
			}
			if limit > 0 && len(all) > limit {
				all = all[len(all)-limit:]
			}
			if output == "json" {
				b, _ := json.Marshal(openapi.List[openapi.AuditEntry]{Items: all})
				return writeJSON(e.stdout, b)
			}
			tw := tabwriter.NewWriter(e.stdout, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "REVISION\tAT\tACTOR\tACTION\tKIND\tNAME")
			for _, a := range all {
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\n", a.Revision, a.At.UTC().Format(time.RFC3339), a.Actor, a.Action, a.Kind, a.ObjectName)
			}
			return tw.Flush()
		},
	}
	cmd.Flags().StringVar(&kindF, "kind", "", "only entries about this kind")
	cmd.Flags().StringVar(&actor, "actor", "", "only entries written with this token name")
	cmd.Flags().IntVar(&limit, "limit", 0, "at most this many entries (0: all)")
	cmd.Flags().StringVarP(&output, "output", "o", "table", "table or json")
	return cmd
}

// completeKinds completes a kind.
func (e *env) completeKinds(_ *cobra.Command, args []string, _ string) ([]string, cobra.ShellCompDirective) {
	if len(args) > 0 {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, k := range kinds {
		out = append(out, k.plural)
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}

// completeKindAndNames completes a kind, then the names of its objects
// (read from the server).
func (e *env) completeKindAndNames(cmd *cobra.Command, args []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if len(args) == 0 {
		return e.completeKinds(cmd, args, toComplete)
	}
	k, err := kindNamed(args[0])
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	c, err := e.client()
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	items, err := k.list(e.ctx, c, listQuery{})
	if err != nil {
		return nil, cobra.ShellCompDirectiveNoFileComp
	}
	var out []string
	for _, raw := range items {
		if n := metaOf(raw).Name; strings.HasPrefix(n, toComplete) {
			out = append(out, n)
		}
	}
	return out, cobra.ShellCompDirectiveNoFileComp
}
