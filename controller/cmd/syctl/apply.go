package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"reflect"
	"sort"
	"strconv"
	"time"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/openapi/client"
)

// writeFlags are the flags of commands that write.
type writeFlags struct {
	files    []string
	dryRun   bool
	wait     bool
	timeout  time.Duration
	prune    bool
	selector string
}

func (f *writeFlags) addWait(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&f.wait, "wait", false, "answer once every host the change touches has applied it (?wait=realized)")
	cmd.Flags().DurationVar(&f.timeout, "timeout", 30*time.Second, "how long --wait may take")
}

// query is the ?wait= part of a write.
func (f *writeFlags) query(sep string) string {
	if !f.wait {
		return ""
	}
	return sep + "wait=realized&timeout=" + url.QueryEscape(f.timeout.String())
}

func (e *env) applyCmd() *cobra.Command {
	var f writeFlags
	cmd := &cobra.Command{
		Use:   "apply -f FILE|DIR|-",
		Short: "Create or update objects from YAML or JSON documents, by name",
		Long: "apply creates each document's object when no object of its kind has its name (in its network),\n" +
			"and otherwise changes the fields the document sets (a merge patch; labels and other maps become\n" +
			"exactly the document's), with If-Match: the document's revision when it has one (as\n" +
			"'syctl get -o yaml' prints), else the revision just read. --prune -l SEL then deletes the\n" +
			"networks, containers, services and policies SEL picks that no document names.",
		Example: "  syctl apply -f lab.yaml\n  syctl get containers -o yaml | syctl apply -f -\n" +
			"  syctl apply -f manifests/ --prune -l app=shop --dry-run",
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if len(f.files) == 0 {
				return usagef("apply needs -f FILE|DIR|-")
			}
			if f.prune && f.selector == "" {
				return usagef("--prune needs -l: it deletes what the selector picks and no document names")
			}
			docs, err := e.readDocuments(f.files)
			if err != nil {
				return err
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			applied := map[string]bool{}
			for _, d := range docs {
				if err := e.applyOne(c, d, f, nil); err != nil {
					return err
				}
				applied[d.k.name+"/"+d.network()+"/"+d.name()] = true
			}
			if f.prune {
				return e.prune(c, f, applied)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&f.files, "filename", "f", nil, "file, directory or - (stdin); repeatable")
	cmd.Flags().BoolVar(&f.dryRun, "dry-run", false, "print what would change, change nothing")
	cmd.Flags().BoolVar(&f.prune, "prune", false, "delete the objects -l picks that no document names")
	cmd.Flags().StringVarP(&f.selector, "selector", "l", "", "label selector for --prune")
	f.addWait(cmd)
	return cmd
}

// dryRunNote marks what a dry run prints.
func dryRunNote(dry bool) string {
	if dry {
		return " (dry run)"
	}
	return ""
}

// applyOne creates d's object or patches it to d. pin, when set, is the
// revision to require (edit's); else d's own revision, else the current.
func (e *env) applyOne(c *client.Client, d *document, f writeFlags, pin *int64) error {
	ro, err := readOnlyFields()
	if err != nil {
		return err
	}
	curRaw, err := d.k.get(e.ctx, c, d.name(), d.network())
	var nf notFoundErr
	if errors.As(err, &nf) {
		if f.dryRun {
			fmt.Fprintf(e.stdout, "%s created (dry run)\n", d)
			return nil
		}
		return e.createDoc(c, d, f)
	}
	if err != nil {
		return err
	}
	cur, err := asMap(curRaw)
	if err != nil {
		return err
	}
	patch := mergePatchTo(cur, d.fields, ro[d.k.name])
	if len(patch) == 0 {
		fmt.Fprintf(e.stdout, "%s unchanged%s\n", d, dryRunNote(f.dryRun))
		return nil
	}
	if d.k.immutable {
		return fmt.Errorf("%s: %s cannot be changed (revoke it and create another)", d.source, d)
	}
	if f.dryRun {
		fmt.Fprintf(e.stdout, "%s configured (dry run)\n", d)
		for _, line := range describePatch("", cur, patch) {
			fmt.Fprintln(e.stdout, "  "+line)
		}
		return nil
	}
	rev := metaOf(curRaw).Revision
	if r, ok := d.fields["revision"].(float64); ok && r > 0 {
		rev = int64(r)
	}
	if pin != nil {
		rev = *pin
	}
	id, _ := cur["id"].(string)
	if err := e.write(c, "PATCH", d.k.path()+"/"+url.PathEscape(id)+f.query("?"), rev, patch, nil); err != nil {
		return fmt.Errorf("configure %s: %w", d, err)
	}
	fmt.Fprintf(e.stdout, "%s configured\n", d)
	return nil
}

// createDoc posts d.
func (e *env) createDoc(c *client.Client, d *document, f writeFlags) error {
	ro, err := readOnlyFields()
	if err != nil {
		return err
	}
	body := map[string]any{}
	for k, v := range d.fields {
		if !ro[d.k.name][k] {
			body[k] = v
		}
	}
	var out map[string]any
	if err := e.write(c, "POST", d.k.path()+f.query("?"), 0, body, &out); err != nil {
		return fmt.Errorf("create %s: %w", d, err)
	}
	if secret, ok := out["secret"].(string); ok && secret != "" {
		fmt.Fprintf(e.stdout, "%s created; its secret (shown only now): %s\n", d, secret)
	} else {
		fmt.Fprintf(e.stdout, "%s created\n", d)
	}
	return nil
}

// write sends a body with If-Match (rev > 0).
func (e *env) write(c *client.Client, method, path string, rev int64, body, out any) error {
	hc := *c
	if rev > 0 {
		base := c.HTTP.Transport
		if base == nil {
			base = http.DefaultTransport
		}
		hc.HTTP = &http.Client{Transport: ifMatch{base: base, etag: `"` + strconv.FormatInt(rev, 10) + `"`}}
	}
	_, err := hc.Do(e.ctx, method, path, body, out)
	return err
}

// ifMatch adds If-Match to requests (the shared client sets no headers).
type ifMatch struct {
	base http.RoundTripper
	etag string
}

func (t ifMatch) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("If-Match", t.etag)
	return t.base.RoundTrip(r)
}

// mergePatchTo is the JSON merge patch that makes cur's fields what want
// says, leaving the fields want does not name and the read-only ones: in
// objects (labels), members want lacks are removed. "", 0 and null in want
// stand for absent, as in the API.
func mergePatchTo(cur, want map[string]any, readOnly map[string]bool) map[string]any {
	patch := map[string]any{}
	for k, wv := range want {
		if readOnly[k] {
			continue
		}
		cv, had := cur[k]
		cm, cok := cv.(map[string]any)
		wm, wok := wv.(map[string]any)
		if !cok || !wok {
			if !sameValue(cv, had, wv) {
				patch[k] = wv
			}
			continue
		}
		sub := mergePatchTo(cm, wm, nil)
		for ck := range cm {
			if _, ok := wm[ck]; !ok {
				sub[ck] = nil
			}
		}
		if len(sub) > 0 {
			patch[k] = sub
		}
	}
	return patch
}

func sameValue(cv any, had bool, wv any) bool {
	if isZero(wv) && (!had || isZero(cv)) {
		return true
	}
	return covers(cv, wv)
}

// covers says whether cur already is what want asks: equal values, where a
// member an object in want leaves out (inside a list: a port's protocol)
// keeps the value the server gave it (its default).
func covers(cur, want any) bool {
	switch w := want.(type) {
	case map[string]any:
		c, ok := cur.(map[string]any)
		if !ok {
			return false
		}
		for k, wv := range w {
			cv, had := c[k]
			if !sameValue(cv, had, wv) {
				return false
			}
		}
		return true
	case []any:
		c, ok := cur.([]any)
		if !ok || len(c) != len(w) {
			return false
		}
		for i := range w {
			if !covers(c[i], w[i]) {
				return false
			}
		}
		return true
	}
	return reflect.DeepEqual(cur, want)
}

func isZero(v any) bool {
	switch v := v.(type) {
	case nil:
		return true
	case string:
		return v == ""
	case float64:
		return v == 0
	}
	return false
}

// describePatch lists a patch's changes, one per line: "labels.app: web -> api".
func describePatch(prefix string, cur, patch map[string]any) []string {
	keys := make([]string, 0, len(patch))
	for k := range patch {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []string
	for _, k := range keys {
		pv := patch[k]
		if pm, ok := pv.(map[string]any); ok {
			cm, _ := cur[k].(map[string]any)
			out = append(out, describePatch(prefix+k+".", cm, pm)...)
			continue
		}
		cv, had := cur[k]
		switch {
		case pv == nil:
			out = append(out, fmt.Sprintf("%s%s: %s -> (removed)", prefix, k, compact(cv)))
		case !had:
			out = append(out, fmt.Sprintf("%s%s: (unset) -> %s", prefix, k, compact(pv)))
		default:
			out = append(out, fmt.Sprintf("%s%s: %s -> %s", prefix, k, compact(cv), compact(pv)))
		}
	}
	return out
}

func compact(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// prune deletes the objects f.selector picks that were not applied.
func (e *env) prune(c *client.Client, f writeFlags, applied map[string]bool) error {
	for i := len(kinds) - 1; i >= 0; i-- {
		k := kinds[i]
		if k.immutable || k.name == "host" {
			continue
		}
		items, err := k.list(e.ctx, c, listQuery{selector: f.selector})
		if err != nil {
			return err
		}
		for _, raw := range items {
			m := metaOf(raw)
			network := ""
			if k.scoped {
				network = m.Network
			}
			if applied[k.name+"/"+network+"/"+m.Name] {
				continue
			}
			fmt.Fprintf(e.stdout, "%s/%s pruned%s\n", k.name, m.Name, dryRunNote(f.dryRun))
			if f.dryRun {
				continue
			}
			if err := e.write(c, "DELETE", k.path()+"/"+url.PathEscape(m.ID)+f.query("?"), 0, nil, nil); err != nil {
				return fmt.Errorf("prune %s/%s: %w", k.name, m.Name, err)
			}
		}
	}
	return nil
}
