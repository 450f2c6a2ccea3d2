package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"strings"

	"github.com/spf13/cobra"

	"github.com/switchyard/switchyard/openapi/client"
)

func (e *env) createCmd() *cobra.Command {
	var f writeFlags
	cmd := &cobra.Command{
		Use:   "create (-f FILE|DIR|- | KIND NAME [FIELD=VALUE...])",
		Short: "Create objects from documents, or one from fields (409 when it exists)",
		Long: "create posts new objects. FIELD=VALUE sets a field of the object: a dotted FIELD nests\n" +
			"(labels.app=web), a VALUE that is JSON is taken as JSON (mtu=1400, publish='[{\"hostPort\":8080,\"port\":80}]'),\n" +
			"anything else as a string. A token's secret is printed once.",
		Example: "  syctl create network blue cidr=10.10.0.0/24\n" +
			"  syctl create container web1 network=blue host=h1 labels.app=web\n" +
			"  syctl create token ci role=operator\n  syctl create -f lab.yaml",
		ValidArgsFunction: e.completeKinds,
		RunE: func(cmd *cobra.Command, args []string) error {
			var docs []*document
			switch {
			case len(f.files) > 0 && len(args) > 0:
				return usagef("give -f or KIND NAME, not both")
			case len(f.files) > 0:
				var err error
				if docs, err = e.readDocuments(f.files); err != nil {
					return err
				}
			case len(args) >= 2:
				d, err := fieldDocument(args)
				if err != nil {
					return err
				}
				docs = []*document{d}
			default:
				return usagef("create needs -f FILE or KIND NAME [FIELD=VALUE...]")
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			for _, d := range docs {
				if err := e.createDoc(c, d, f); err != nil {
					return err
				}
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&f.files, "filename", "f", nil, "file, directory or - (stdin); repeatable")
	f.addWait(cmd)
	return cmd
}

// fieldDocument builds a document from KIND NAME FIELD=VALUE...
func fieldDocument(args []string) (*document, error) {
	k, err := kindNamed(args[0])
	if err != nil {
		return nil, err
	}
	fields := map[string]any{"name": args[1]}
	for _, a := range args[2:] {
		key, val, ok := strings.Cut(a, "=")
		if !ok || key == "" {
			return nil, usagef("%q is not FIELD=VALUE", a)
		}
		var v any = val
		var j any
		if json.Unmarshal([]byte(val), &j) == nil {
			v = j
		}
		setPath(fields, strings.Split(key, "."), v)
	}
	return &document{k: k, fields: fields, source: "command line"}, nil
}

func setPath(m map[string]any, path []string, v any) {
	for _, p := range path[:len(path)-1] {
		sub, ok := m[p].(map[string]any)
		if !ok {
			sub = map[string]any{}
			m[p] = sub
		}
		m = sub
	}
	m[path[len(path)-1]] = v
}

func (e *env) deleteCmd() *cobra.Command {
	var f writeFlags
	var g getFlags
	var ignoreNotFound bool
	cmd := &cobra.Command{
		Use:               "delete (KIND NAME... | KIND -l SELECTOR | -f FILE)",
		Short:             "Delete objects (revoke tokens)",
		Example:           "  syctl delete container web1 -n blue\n  syctl delete containers -l app=web\n  syctl delete -f lab.yaml",
		ValidArgsFunction: e.completeKindAndNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := e.client()
			if err != nil {
				return err
			}
			type target struct {
				k       *kind
				ref     string
				network string
			}
			var targets []target
			switch {
			case len(f.files) > 0:
				if len(args) > 0 {
					return usagef("give -f or KIND NAME, not both")
				}
				docs, err := e.readDocuments(f.files)
				if err != nil {
					return err
				}
				for i := len(docs) - 1; i >= 0; i-- {
					targets = append(targets, target{docs[i].k, docs[i].name(), docs[i].network()})
				}
			default:
				k, names, err := kindArgs(args)
				if err != nil {
					return err
				}
				switch {
				case len(names) > 0 && g.selector != "":
					return usagef("give names or -l, not both")
				case len(names) == 0 && g.selector == "":
					return usagef("name the %s to delete, or select them with -l", k.plural)
				case len(names) == 0:
					items, err := k.list(e.ctx, c, listQuery{selector: g.selector, network: g.network, host: g.host})
					if err != nil {
						return err
					}
					for _, raw := range items {
						m := metaOf(raw)
						targets = append(targets, target{k, m.ID, m.Network})
					}
				}
				for _, n := range names {
					targets = append(targets, target{k, n, g.network})
				}
			}
			for _, t := range targets {
				raw, err := t.k.get(e.ctx, c, t.ref, t.network)
				if err != nil {
					if exitCode(err) == exitNotFound && ignoreNotFound {
						continue
					}
					return err
				}
				m := metaOf(raw)
				if err := e.write(c, "DELETE", t.k.path()+"/"+url.PathEscape(m.ID)+f.query("?"), 0, nil, nil); err != nil {
					return fmt.Errorf("delete %s/%s: %w", t.k.name, m.Name, err)
				}
				fmt.Fprintf(e.stdout, "%s/%s deleted\n", t.k.name, m.Name)
			}
			return nil
		},
	}
	cmd.Flags().StringArrayVarP(&f.files, "filename", "f", nil, "delete the objects these documents name")
	cmd.Flags().BoolVar(&ignoreNotFound, "ignore-not-found", false, "an object that does not exist is not an error")
	g.add(cmd, false)
	f.addWait(cmd)
	return cmd
}

func (e *env) editCmd() *cobra.Command {
	var f writeFlags
	var network string
	cmd := &cobra.Command{
		Use:               "edit KIND NAME",
		Short:             "Edit an object's YAML in $SWITCHYARD_EDITOR, $EDITOR or vi, then apply it (If-Match: the revision read)",
		Args:              cobra.RangeArgs(1, 2),
		ValidArgsFunction: e.completeKindAndNames,
		RunE: func(cmd *cobra.Command, args []string) error {
			k, name, err := oneObject("edit", args)
			if err != nil {
				return err
			}
			if k.immutable {
				return usagef("%s cannot be edited", k.plural)
			}
			c, err := e.client()
			if err != nil {
				return err
			}
			return e.edit(c, k, name, network, f)
		},
	}
	cmd.Flags().StringVarP(&network, "network", "n", "", "network of the object")
	f.addWait(cmd)
	return cmd
}

func (e *env) edit(c *client.Client, k *kind, ref, network string, f writeFlags) error {
	raw, err := k.get(e.ctx, c, ref, network)
	if err != nil {
		return err
	}
	before, err := yamlOf(withKind(k, raw))
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp("", "syctl-edit-*.yaml")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(before); err != nil {
		return err
	}
	tmp.Close()
	editor := firstOf(e.getenv("SWITCHYARD_EDITOR"), e.getenv("EDITOR"), e.getenv("VISUAL"), "vi")
	ed := exec.CommandContext(e.ctx, "sh", "-c", editor+` "$1"`, "syctl-editor", tmp.Name())
	ed.Stdin, ed.Stdout, ed.Stderr = e.stdin, e.stdout, e.stderr
	if err := ed.Run(); err != nil {
		return fmt.Errorf("editor %q: %w", editor, err)
	}
	after, err := os.ReadFile(tmp.Name())
	if err != nil {
		return err
	}
	if bytes.Equal(after, before) {
		fmt.Fprintln(e.stdout, "Edit cancelled, no changes made.")
		return nil
	}
	docs, err := parseDocuments(after, "edited "+k.name)
	if err != nil {
		return err
	}
	if len(docs) != 1 || docs[0].k != k {
		return usagef("the edited file must hold the one %s", k.name)
	}
	m := metaOf(raw)
	if docs[0].name() != m.Name {
		return usagef("edit cannot rename %s %s (create another, delete this one)", k.name, m.Name)
	}
	return e.applyOne(c, docs[0], f, &m.Revision)
}
