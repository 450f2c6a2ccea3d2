package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	yaml "go.yaml.in/yaml/v3"
)

// Output formats of -o.
var formats = []string{"table", "wide", "json", "yaml", "name"}

func checkFormat(f string) error {
	for _, ok := range formats {
		if f == ok {
			return nil
		}
	}
	return usagef("unknown output format %q (one of %s)", f, strings.Join(formats, ", "))
}

// withKind is an object's JSON with "kind" as its first member: the form of
// documents syctl prints and applies.
func withKind(k *kind, raw []byte) []byte {
	raw = bytes.TrimSpace(raw)
	var b bytes.Buffer
	b.WriteString(`{"kind":"` + k.name + `"`)
	if rest := bytes.TrimSpace(raw[1:]); len(rest) > 0 && rest[0] != '}' {
		b.WriteByte(',')
	}
	b.Write(raw[1:])
	return b.Bytes()
}

// yamlOf renders JSON as block YAML, keeping the members' order.
func yamlOf(raw []byte) ([]byte, error) {
	var b bytes.Buffer
	err := writeYAML(&b, [][]byte{raw})
	return b.Bytes(), err
}

// yamlChunk is how many documents one YAML encoder writes: its setup costs
// more than a small object, and it keeps every event it emitted.
const yamlChunk = 64

// writeYAML writes JSON objects as YAML documents.
func writeYAML(w io.Writer, raws [][]byte) error {
	for start := 0; start < len(raws); start += yamlChunk {
		if start > 0 {
			if _, err := io.WriteString(w, "---\n"); err != nil {
				return err
			}
		}
		if err := writeYAMLChunk(w, raws[start:min(start+yamlChunk, len(raws))]); err != nil {
			return err
		}
	}
	return nil
}

func writeYAMLChunk(w io.Writer, raws [][]byte) error {
	enc := yaml.NewEncoder(w)
	enc.SetIndent(2)
	for _, raw := range raws {
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.UseNumber()
		node, err := jsonNode(dec)
		if err != nil {
			return err
		}
		if err := enc.Encode(node); err != nil {
			return err
		}
	}
	return enc.Close()
}

// jsonNode reads one JSON value as a YAML node (a direct translation: the
// YAML parser is ten times slower on 10,000 objects). Strings are tagged
// !!str, so the encoder quotes those that would read back as another type.
func jsonNode(dec *json.Decoder) (*yaml.Node, error) {
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch v := tok.(type) {
	case json.Delim:
		n := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
		if v == '[' {
			n = &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
		}
		for dec.More() {
			if n.Kind == yaml.MappingNode {
				key, err := dec.Token()
				if err != nil {
					return nil, err
				}
				n.Content = append(n.Content, &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: key.(string)})
			}
			child, err := jsonNode(dec)
			if err != nil {
				return nil, err
			}
			n.Content = append(n.Content, child)
		}
		if _, err := dec.Token(); err != nil { // the closing delimiter
			return nil, err
		}
		return n, nil
	case string:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v}, nil
	case json.Number:
		tag := "!!int"
		if strings.ContainsAny(v.String(), ".eE") {
			tag = "!!float"
		}
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: tag, Value: v.String()}, nil
	case bool:
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: strconv.FormatBool(v)}, nil
	}
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null"}, nil
}

// printer writes objects of one kind in one format.
type printer struct {
	e      *env
	k      *kind
	format string
	w      io.Writer
	tw     *tabwriter.Writer
	// prefix is an extra first column (watch's EVENT).
	prefix    string
	headerOut bool
	count     int
}

func (e *env) newPrinter(k *kind, format string, w io.Writer) *printer {
	p := &printer{e: e, k: k, format: format, w: w}
	if format == "table" || format == "wide" {
		p.tw = tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
	}
	return p
}

// print writes a list: one table, a List (JSON), documents (YAML) or names.
func (p *printer) printList(items []json.RawMessage, single bool) error {
	switch p.format {
	case "json":
		if single && len(items) == 1 {
			return writeJSON(p.w, withKind(p.k, items[0]))
		}
		var b bytes.Buffer
		b.WriteString(`{"kind":"List","items":[`)
		for i, it := range items {
			if i > 0 {
				b.WriteByte(',')
			}
			b.Write(withKind(p.k, it))
		}
		b.WriteString("]}")
		return writeJSON(p.w, b.Bytes())
	case "yaml":
		raws := make([][]byte, len(items))
		for i, it := range items {
			raws[i] = withKind(p.k, it)
		}
		return writeYAML(p.w, raws)
	case "table", "wide":
		if len(items) == 0 {
			fmt.Fprintf(p.e.stderr, "No %s found.\n", p.k.plural)
			return nil
		}
	}
	for _, it := range items {
		if err := p.print(it); err != nil {
			return err
		}
	}
	return p.flush()
}

// print writes one object (a row, a YAML document, a name, a JSON line).
func (p *printer) print(raw []byte) error {
	p.count++
	switch p.format {
	case "name":
		line := p.k.name + "/" + metaOf(raw).Name
		if p.prefix != "" {
			line += " " + p.prefix
		}
		_, err := fmt.Fprintln(p.w, line)
		return err
	case "json":
		return writeJSON(p.w, withKind(p.k, raw))
	case "yaml":
		y, err := yamlOf(withKind(p.k, raw))
		if err != nil {
			return err
		}
		if p.count > 1 {
			io.WriteString(p.w, "---\n")
		}
		_, err = p.w.Write(y)
		return err
	}
	cols, wide, err := p.k.row(raw, p.e)
	if err != nil {
		return err
	}
	if !p.headerOut {
		head := p.k.header
		if p.format == "wide" {
			head = append(append([]string{}, head...), p.k.wide...)
		}
		if p.prefix != "" {
			head = append([]string{"EVENT"}, head...)
		}
		fmt.Fprintln(p.tw, strings.Join(head, "\t"))
		p.headerOut = true
	}
	if p.format == "wide" {
		cols = append(cols, wide...)
	}
	if p.prefix != "" {
		cols = append([]string{p.prefix}, cols...)
	}
	_, err = fmt.Fprintln(p.tw, strings.Join(cols, "\t"))
	return err
}

func (p *printer) flush() error {
	if p.tw != nil {
		return p.tw.Flush()
	}
	return nil
}

func writeJSON(w io.Writer, raw []byte) error {
	var b bytes.Buffer
	if err := json.Indent(&b, raw, "", "  "); err != nil {
		return err
	}
	b.WriteByte('\n')
	_, err := w.Write(b.Bytes())
	return err
}
