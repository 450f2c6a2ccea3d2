package pgfail

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Matrix row 9, read-only: default_transaction_read_only switched on (what
// an operator or a disk-space guard does) while clients write. Writes answer
// 503 "read-only", reads keep answering, /readyz says why it is not ready;
// switched off again, the retried writes go through by themselves.
func TestPostgresReadOnly(t *testing.T) {
	pg := Primary(t, "readonly")
	pg.Exec(t, "postgres", "CREATE DATABASE switchyard")
	ctl := StartController(t, pg.URL("switchyard"))
	c := newAPI(ctl.URL)
	c.must(t, 201, "POST", "/api/v1/networks", map[string]any{"name": "n1", "cidr": "10.1.0.0/16"}, nil)
	c.must(t, 201, "POST", "/api/v1/hosts", map[string]any{"name": "h1", "address": "192.168.200.11"}, nil)
	w := startWriters(c, 2, "n1", "h1")
	defer w.halt()
	waitAcked(t, w, 10)

	switched := time.Now()
	pg.Exec(t, "postgres", "ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()")
	refused := waitRefused(t, w, time.Second)
	to503 := refused.Sub(switched)
	a := c.call("POST", "/api/v1/networks", map[string]any{"name": "n2", "cidr": "10.2.0.0/16"})
	if err := a.problem503(); err != nil || !strings.Contains(string(a.Body), "read-only") {
		t.Errorf("write while read-only: %v: %s", err, a.Body)
	}
	if a := c.call("GET", "/api/v1/containers", nil); a.Status != 200 {
		t.Errorf("read while read-only: %d %s", a.Status, a.Body)
	}
	if a := c.call("GET", "/readyz", nil); a.Status != 503 || !strings.Contains(string(a.Body), "read-only") {
		t.Errorf("/readyz while read-only: %d %s", a.Status, a.Body)
	}
	if a := c.call("GET", "/healthz", nil); a.Status != 200 {
		t.Errorf("/healthz while read-only: %d", a.Status)
	}

	acked, _ := w.count()
	back := time.Now()
	pg.Exec(t, "postgres", "SET default_transaction_read_only = off", "ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()")
	firstWrite, ready := waitRecovered(t, c, w, acked, back)
	w.halt()
	w.check(t, answerBound)
	checkAcked(t, c, w)
	t.Logf("FIGURES row 9 (read-only): first 503 %s after the reload; writes answered 503 in %s; "+
		"switched back: first retried write acknowledged in %s, /readyz 200 in %s",
		to503.Round(time.Millisecond), a.Took.Round(time.Millisecond), firstWrite.Round(time.Millisecond), ready.Round(time.Millisecond))
}

// Matrix row 9, disk full: the database lives in a tablespace on a small
// tmpfs, which a file of the test fills. Writes that need a new page answer
// 503 "out of disk space" (never 500, nothing half written); once the file
// is gone, the retried writes go through by themselves.
func TestPostgresDiskFull(t *testing.T) {
	mnt := tmpfs(t, "32m")
	pg := Primary(t, "diskfull")
	pg.Exec(t, "postgres", "CREATE TABLESPACE small LOCATION '"+mnt+"/pg'", "CREATE DATABASE switchyard TABLESPACE small")
	ctl := StartController(t, pg.URL("switchyard"))
	c := newAPI(ctl.URL)
	c.must(t, 201, "POST", "/api/v1/networks", map[string]any{"name": "n1", "cidr": "10.1.0.0/16"}, nil)
	c.must(t, 201, "POST", "/api/v1/hosts", map[string]any{"name": "h1", "address": "192.168.200.11"}, nil)
	w := startWriters(c, 2, "n1", "h1")
	defer w.halt()
	waitAcked(t, w, 10)

	filler := filepath.Join(mnt, "filler")
	fill(t, mnt, filler)
	filled := time.Now()
	refused := waitRefused(t, w, time.Second)
	a := c.call("POST", "/api/v1/networks", map[string]any{"name": "n2", "cidr": "10.2.0.0/16"})
	if err := a.problem503(); err != nil || !strings.Contains(string(a.Body), "disk") {
		t.Errorf("write while the disk is full: %v: %s", err, a.Body)
	}
	if a := c.call("GET", "/api/v1/containers", nil); a.Status != 200 {
		t.Errorf("read while the disk is full: %d %s", a.Status, a.Body)
	}
	if a := c.call("GET", "/healthz", nil); a.Status != 200 {
		t.Errorf("/healthz while the disk is full: %d", a.Status)
	}

	acked, _ := w.count()
	back := time.Now()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	firstWrite, ready := waitRecovered(t, c, w, acked, back)
	w.halt()
	w.check(t, answerBound)
	checkAcked(t, c, w)
	t.Logf("FIGURES row 9 (disk full): first 503 %s after the disk filled; writes answered 503 in %s; "+
		"space back: first retried write acknowledged in %s, /readyz 200 in %s",
		refused.Sub(filled).Round(time.Millisecond), a.Took.Round(time.Millisecond), firstWrite.Round(time.Millisecond), ready.Round(time.Millisecond))
}

// waitAcked waits until the writers have n writes acknowledged.
func waitAcked(t testing.TB, w *writers, n int) {
	t.Helper()
	eventually(t, 30*time.Second, "acknowledged writes", func() error {
		if got, _ := w.count(); got < n {
			return fmt.Errorf("%d acknowledged", got)
		}
		return nil
	})
}

// waitRefused waits until the writers have been refused for d, and returns
// when the first refusal came.
func waitRefused(t testing.TB, w *writers, d time.Duration) time.Time {
	t.Helper()
	eventually(t, 60*time.Second, "the writers are refused", func() error {
		if got := w.refusedFor(); got < d {
			return fmt.Errorf("refused for %s", got)
		}
		return nil
	})
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.first503
}

// waitRecovered waits until a write is acknowledged after acked ones, /readyz
// answers 200 and 10 more writes landed; it returns the first two as times
// since back.
func waitRecovered(t testing.TB, c *api, w *writers, acked int, back time.Time) (firstWrite, ready time.Duration) {
	t.Helper()
	waitAcked(t, w, acked+1)
	firstWrite = time.Since(back)
	eventually(t, 30*time.Second, "/readyz", func() error {
		if a := c.call("GET", "/readyz", nil); a.Status != 200 {
			return fmt.Errorf("%d %s", a.Status, a.Body)
		}
		return nil
	})
	ready = time.Since(back)
	waitAcked(t, w, acked+10)
	return firstWrite, ready
}

// tmpfs mounts a tmpfs of size in a temporary directory (a directory pg/
// in it belongs to postgres), unmounted when the test ends, after the
// servers it started later have stopped.
func tmpfs(t testing.TB, size string) string {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root (mount)")
	}
	dir, err := os.MkdirTemp("", "sypg-tmpfs-")
	if err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0755", "tmpfs", dir).CombinedOutput(); err != nil {
		os.Remove(dir)
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
			return
		}
		os.Remove(dir)
	})
	if out, err := exec.Command("install", "-d", "-o", "postgres", "-g", "postgres", "-m", "700", filepath.Join(dir, "pg")).CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	return dir
}

// fill takes every free byte of the file system at mnt with file.
func fill(t testing.TB, mnt, file string) {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	free := int64(st.Bavail) * st.Bsize
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, free); err != nil {
		t.Fatalf("fallocate %d bytes: %v", free, err)
	}
}
