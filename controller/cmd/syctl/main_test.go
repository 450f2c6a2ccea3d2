package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	goldenfile "github.com/switchyard/switchyard/controller/internal/golden"

	"github.com/switchyard/switchyard/controller/internal/testenv"
	"github.com/switchyard/switchyard/openapi"
	"github.com/switchyard/switchyard/openapi/client"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/golden")

// lab is a controller on a fresh database, and how to run syctl against it.
type lab struct {
	t   *testing.T
	url string
	env map[string]string
	ctl *testenv.Controller
}

// newLab starts a controller; with apply, it applies testdata/lab.yaml.
func newLab(t *testing.T, apply bool) *lab {
	t.Helper()
	ctl := testenv.Start(t, testenv.DatabaseURL(t), nil)
	home := t.TempDir()
	l := &lab{t: t, url: ctl.URL, ctl: ctl, env: map[string]string{
		"SWITCHYARD_URL": ctl.URL, "SWITCHYARD_TOKEN": testenv.AdminToken, "HOME": home,
	}}
	if apply {
		l.ok("apply", "-f", "testdata/lab.yaml")
		l.compiled()
	}
	return l
}

// compiled waits until the controller has compiled every host's program up
// to the current revision (the last write of the lab touches every host), so
// that programRevision in outputs is settled.
func (l *lab) compiled() {
	l.t.Helper()
	c := client.New(l.url, testenv.AdminToken)
	deadline := time.Now().Add(10 * time.Second)
	for {
		rev, err := currentRevision(l.t.Context(), c)
		if err != nil {
			l.t.Fatal(err)
		}
		var hosts openapi.List[openapi.Host]
		if _, err := c.Do(l.t.Context(), "GET", "/api/v1/hosts", nil, &hosts); err != nil {
			l.t.Fatal(err)
		}
		done := true
		for _, h := range hosts.Items {
			done = done && h.ProgramRevision == rev
		}
		if done {
			return
		}
		if time.Now().After(deadline) {
			l.t.Fatalf("hosts not compiled up to revision %d: %+v", rev, hosts.Items)
		}
		select {
		case <-l.t.Context().Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// result is one syctl run.
type result struct {
	out, err string
	code     int
}

// run runs syctl with stdin (may be empty).
func (l *lab) runIn(ctx context.Context, stdin string, args ...string) result {
	var out, errb bytes.Buffer
	code := run(ctx, args, strings.NewReader(stdin), &out, &errb, func(k string) string { return l.env[k] })
	return result{out.String(), errb.String(), code}
}

func (l *lab) run(args ...string) result { return l.runIn(context.Background(), "", args...) }

// ok runs syctl and fails the test unless it exits 0.
func (l *lab) ok(args ...string) string {
	l.t.Helper()
	r := l.run(args...)
	if r.code != 0 {
		l.t.Fatalf("syctl %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.out, r.err)
	}
	return r.out
}

// fail runs syctl and wants exit code want and a one-line error matching re.
func (l *lab) fail(want int, re string, args ...string) result {
	l.t.Helper()
	r := l.run(args...)
	if r.code != want {
		l.t.Fatalf("syctl %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, want, r.out, r.err)
	}
	first := strings.SplitN(r.err, "\n", 2)[0]
	if !regexp.MustCompile(re).MatchString(first) {
		l.t.Fatalf("syctl %s: error %q does not match %q", strings.Join(args, " "), first, re)
	}
	return r
}

var (
	uuidRE = regexp.MustCompile(`[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}`)
	timeRE = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)`)
)

// normalize replaces what changes from run to run (ids, times).
func normalize(s string) string {
	s = uuidRE.ReplaceAllString(s, "<id>")
	return timeRE.ReplaceAllString(s, "<time>")
}

// golden compares got, normalized, with testdata/golden/<name>.golden
// (rewritten with -update).
func golden(t *testing.T, name, got string) {
	t.Helper()
	goldenfile.Check(t, filepath.Join("golden", name), normalize(got), *update)
}

func TestMain(m *testing.M) {
	// Ages in tables are fixed, so that golden files hold.
	ageFunc = func(string) string { return "5m" }
	os.Exit(m.Run())
}
