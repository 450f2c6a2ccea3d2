package selector

import (
	"strings"
	"testing"
)

func TestParseAndMatch(t *testing.T) {
	labels := map[string]string{"app": "web", "tier": "fe", "idx": "7"}
	cases := []struct {
		sel  string
		want bool
	}{
		{"", true},
		{"app=web", true},
		{"app==web", true},
		{"app=db", false},
		{"app!=db", true},
		{"missing!=x", true},
		{"tier in (fe,be)", true},
		{"tier notin (fe)", false},
		{"missing notin (fe)", true},
		{"app", true},
		{"!app", false},
		{"!legacy", true},
		{"app=web,tier in (fe,be),!legacy", true},
		{"app=web,tier=be", false},
		{"idx>5", true},
		{"idx<5", false},
	}
	for _, c := range cases {
		s, err := Parse(c.sel)
		if err != nil {
			t.Fatalf("%q: %v", c.sel, err)
		}
		if got := s.Matches(labels); got != c.want {
			t.Errorf("%q matches %v = %v, want %v", c.sel, labels, got, c.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	for _, bad := range []string{"app in (web", "=x", "app=web,", "a b"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestSQL(t *testing.T) {
	s := MustParse("app=web,tier in (fe,be),!legacy,idx>3")
	sql, args := s.SQL("x.labels", []any{"first"})
	if !strings.HasPrefix(sql, "(") || strings.Count(sql, " AND ") != 3 {
		t.Fatalf("sql %s", sql)
	}
	if args[0] != "first" || len(args) < 6 {
		t.Fatalf("args %v", args)
	}
	if !strings.Contains(sql, "$2") || strings.Contains(sql, "$1") {
		t.Fatalf("parameters must continue after the given ones: %s", sql)
	}
	if sql, _ := (Selector{}).SQL("x.labels", nil); sql != "TRUE" {
		t.Fatalf("empty selector: %s", sql)
	}
}

// FuzzSelector: any string either fails to parse or gives a selector whose
// Go evaluation and SQL rendering never panic, and whose SQL passes every
// value as a parameter (the source never lands in the SQL text).
func FuzzSelector(f *testing.F) {
	for _, s := range []string{"n>5", "n<99999999999999999999", "app=web,tier in (fe,be),!legacy", "a=\x00", "x in ('); DROP TABLE t; --)"} {
		f.Add(s, "99999999999999999999")
	}
	f.Fuzz(func(t *testing.T, src, value string) {
		s, err := Parse(src)
		if err != nil {
			return
		}
		s.Matches(map[string]string{"n": value, "app": value})
		sql, _ := s.SQL("x.labels", nil)
		if strings.Contains(strings.ReplaceAll(sql, `'^[-+]?[0-9]{1,19}$'`, ""), "'") {
			t.Fatalf("a value is inlined in %s", sql)
		}
	})
}
