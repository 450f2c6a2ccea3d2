// Package selector parses label selectors in Kubernetes syntax
// (`app=web,tier in (fe,be),!legacy`) and evaluates them, in Go against a
// label map or in SQL against a jsonb column. One syntax everywhere: list
// filters, services, policies and policy peers. It must not touch the database
// itself; it only writes SQL fragments.
package selector

import (
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/selection"
)

// Selector is a parsed label selector. The zero value selects everything.
type Selector struct {
	sel labels.Selector
	src string
}

// Parse parses s. An empty string selects everything.
func Parse(s string) (Selector, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return Selector{src: ""}, nil
	}
	sel, err := labels.Parse(s)
	if err != nil {
		return Selector{}, fmt.Errorf("malformed selector %q: %v", s, err)
	}
	return Selector{sel: sel, src: s}, nil
}

// MustParse is Parse for constants in tests; it panics on error.
func MustParse(s string) Selector {
	sel, err := Parse(s)
	if err != nil {
		panic(err)
	}
	return sel
}

// String returns the canonical form of the selector.
func (s Selector) String() string {
	if s.sel == nil {
		return ""
	}
	return s.sel.String()
}

// Empty reports whether s selects everything.
func (s Selector) Empty() bool { return s.sel == nil || s.sel.Empty() }

// Matches reports whether a label set is selected.
func (s Selector) Matches(l map[string]string) bool {
	if s.sel == nil {
		return true
	}
	return s.sel.Matches(labels.Set(l))
}

// SQL renders the selector as a boolean SQL expression over the jsonb column
// col. Values are passed as parameters, numbered from len(args)+1; the
// returned args extend the given ones.
func (s Selector) SQL(col string, args []any) (string, []any) {
	if s.Empty() {
		return "TRUE", args
	}
	reqs, _ := s.sel.Requirements()
	parts := make([]string, 0, len(reqs))
	param := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	for _, r := range reqs {
		key := r.Key()
		vals := r.Values().List()
		switch r.Operator() {
		case selection.Equals, selection.DoubleEquals:
			parts = append(parts, fmt.Sprintf("%s @> jsonb_build_object(%s::text, %s::text)", col, param(key), param(vals[0])))
		case selection.NotEquals:
			parts = append(parts, fmt.Sprintf("(%s->>%s) IS DISTINCT FROM %s", col, param(key), param(vals[0])))
		case selection.In:
			parts = append(parts, fmt.Sprintf("(%s->>%s) = ANY(%s::text[])", col, param(key), param(vals)))
		case selection.NotIn:
			parts = append(parts, fmt.Sprintf("NOT COALESCE((%s->>%s) = ANY(%s::text[]), false)", col, param(key), param(vals)))
		case selection.Exists:
			parts = append(parts, fmt.Sprintf("%s ? %s", col, param(key)))
		case selection.DoesNotExist:
			parts = append(parts, fmt.Sprintf("NOT (%s ? %s)", col, param(key)))
		default:
			op := ">"
			if r.Operator() == selection.LessThan {
				op = "<"
			}
			parts = append(parts, numericSQL(col+"->>"+param(key), op, param(vals[0])))
		}
	}
	return "(" + strings.Join(parts, " AND ") + ")", args
}

// numericSQL compares the label value v with the selector's integer as
// Matches does: only a value that parses as an int64 can match; any other
// (not a number, or out of range) does not, and never makes the query fail.
// The CASE branches run in order, so v is cast only once it is known to be
// at most 19 digits.
func numericSQL(v, op, want string) string {
	return fmt.Sprintf(`(CASE WHEN (%[1]s) IS NULL OR (%[1]s) !~ '^[-+]?[0-9]{1,19}$' THEN false
		WHEN (%[1]s)::numeric < -9223372036854775808 OR (%[1]s)::numeric > 9223372036854775807 THEN false
		ELSE (%[1]s)::numeric %[2]s %[3]s::numeric END)`, v, op, want)
}
