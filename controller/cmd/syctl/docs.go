package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	yaml "go.yaml.in/yaml/v3"
)

// document is one object of a file syctl applies or creates.
type document struct {
	k      *kind
	fields map[string]any // the object, without "kind"
	source string         // file, for messages
}

func (d *document) name() string {
	s, _ := d.fields["name"].(string)
	return s
}

func (d *document) network() string {
	if !d.k.scoped {
		return ""
	}
	s, _ := d.fields["network"].(string)
	return s
}

func (d *document) String() string { return d.k.name + "/" + d.name() }

// readDocuments reads the documents of every FILE, DIR (its .yaml, .yml and
// .json files) or - (stdin), in dependency order of their kinds.
func (e *env) readDocuments(paths []string) ([]*document, error) {
	var docs []*document
	for _, p := range paths {
		files := []string{p}
		if p != "-" {
			st, err := os.Stat(p)
			if err != nil {
				return nil, err
			}
			if st.IsDir() {
				if files, err = dirFiles(p); err != nil {
					return nil, err
				}
			}
		}
		for _, f := range files {
			var data []byte
			var err error
			if f == "-" {
				data, err = io.ReadAll(e.stdin)
			} else {
				data, err = os.ReadFile(f)
			}
			if err != nil {
				return nil, err
			}
			ds, err := parseDocuments(data, f)
			if err != nil {
				return nil, err
			}
			docs = append(docs, ds...)
		}
	}
	sort.SliceStable(docs, func(i, j int) bool { return kindIndex(docs[i].k) < kindIndex(docs[j].k) })
	return docs, nil
}

func dirFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, en := range entries {
		switch strings.ToLower(filepath.Ext(en.Name())) {
		case ".yaml", ".yml", ".json":
			if !en.IsDir() {
				out = append(out, filepath.Join(dir, en.Name()))
			}
		}
	}
	return out, nil
}

func kindIndex(k *kind) int {
	for i, x := range kinds {
		if x == k {
			return i
		}
	}
	return len(kinds)
}

// parseDocuments reads YAML (several documents separated by ---) or JSON
// (a stream of values; an array or a {"kind":"List","items":[...]} holds
// several).
func parseDocuments(data []byte, source string) ([]*document, error) {
	var dec interface{ Decode(any) error }
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && (trimmed[0] == '{' || trimmed[0] == '[') {
		dec = json.NewDecoder(bytes.NewReader(trimmed))
	} else {
		dec = yaml.NewDecoder(bytes.NewReader(data))
	}
	var values []any
	for {
		var v any
		if err := dec.Decode(&v); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("%s: %w", source, err)
		}
		if v != nil { // an empty YAML document
			values = append(values, v)
		}
	}
	return expand(values, source+": document")
}

// toDocuments turns one decoded value into documents, through JSON so that
// YAML's types become JSON's.
func toDocuments(v any, where string) ([]*document, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	var list []any
	if json.Unmarshal(raw, &list) == nil {
		return expand(list, where+", item")
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, usagef("%s: not an object", where)
	}
	kindName, _ := m["kind"].(string)
	if kindName == "List" {
		items, _ := m["items"].([]any)
		return expand(items, where+", item")
	}
	if kindName == "" {
		return nil, usagef("%s: no kind (one of %s)", where, kindList())
	}
	k, err := kindNamed(kindName)
	if err != nil {
		return nil, usagef("%s: %v", where, err)
	}
	delete(m, "kind")
	d := &document{k: k, fields: m, source: where}
	if d.name() == "" {
		return nil, usagef("%s: %s without a name", where, k.name)
	}
	return []*document{d}, nil
}

// expand turns values into documents, numbered after what in messages.
func expand(items []any, what string) ([]*document, error) {
	var out []*document
	for i, it := range items {
		ds, err := toDocuments(it, fmt.Sprintf("%s %d", what, i+1))
		if err != nil {
			return nil, err
		}
		out = append(out, ds...)
	}
	return out, nil
}

// asMap decodes an object's JSON the way documents are decoded.
func asMap(raw []byte) (map[string]any, error) {
	var m map[string]any
	err := json.Unmarshal(raw, &m)
	return m, err
}
