package pgfail

import (
	"errors"
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
	s := writing(t, pg.URL("switchyard"), 2)

	switched := time.Now()
	pg.Exec(t, "postgres", "ALTER SYSTEM SET default_transaction_read_only = on", "SELECT pg_reload_conf()")
	refused := waitRefused(t, s.w, time.Second)
	write := s.checkDegraded(t, "read-only", true)
	acked, _ := s.w.count()
	back := time.Now()
	pg.Exec(t, "postgres", "SET default_transaction_read_only = off", "ALTER SYSTEM RESET default_transaction_read_only", "SELECT pg_reload_conf()")
	firstWrite, ready := waitRecovered(t, s.c, s.w, acked, back)
	s.finish(t, true)
	t.Logf("FIGURES row 9 (read-only): first 503 %s after the reload; writes answered 503 in %s; "+
		"switched back: first retried write acknowledged in %s, /readyz 200 in %s",
		refused.Sub(switched).Round(time.Millisecond), write.Round(time.Millisecond), firstWrite.Round(time.Millisecond), ready.Round(time.Millisecond))
}

// Matrix row 9, disk full: the database lives in a tablespace on a small
// tmpfs, which a file of the test fills. Writes that need a new page answer
// 503 "out of disk space" (never 500, nothing half written); once the file
// is gone, the retried writes go through by themselves.
func TestPostgresDiskFull(t *testing.T) {
	mnt := tmpfs(t, "32m")
	pg := Primary(t, "diskfull")
	pg.Exec(t, "postgres", "CREATE TABLESPACE small LOCATION '"+mnt+"/pg'", "CREATE DATABASE switchyard TABLESPACE small")
	s := writing(t, pg.URL("switchyard"), 2)

	filler := filepath.Join(mnt, "filler")
	fill(t, mnt, filler)
	filled := time.Now()
	refused := waitRefused(t, s.w, time.Second)
	write := s.checkDegraded(t, "disk", false)
	acked, _ := s.w.count()
	back := time.Now()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	firstWrite, ready := waitRecovered(t, s.c, s.w, acked, back)
	s.finish(t, true)
	t.Logf("FIGURES row 9 (disk full): first 503 %s after the disk filled; writes answered 503 in %s; "+
		"space back: first retried write acknowledged in %s, /readyz 200 in %s",
		refused.Sub(filled).Round(time.Millisecond), write.Round(time.Millisecond), firstWrite.Round(time.Millisecond), ready.Round(time.Millisecond))
}

// checkDegraded checks a database that answers but takes no writes: a
// write is a 503 whose detail says why, a read answers, /healthz 200, and,
// when notReady, /readyz 503 with the same reason. It returns how long the
// write's answer took. (A full disk may still take a write that fits in a
// page's room, freed by pruning the rows of refused writes: a few writes
// are tried, each a 201 or that 503.)
func (s *scene) checkDegraded(t testing.TB, why string, notReady bool) time.Duration {
	t.Helper()
	var a answer
	for i := range 20 {
		a = s.c.call("POST", "/api/v1/networks", map[string]any{"name": fmt.Sprintf("probe%d", i), "cidr": fmt.Sprintf("10.%d.0.0/16", 100+i)})
		if a.Status != 201 {
			break
		}
	}
	if err := a.problem503(); err != nil || !strings.Contains(string(a.Body), why) {
		t.Errorf("a write: %v: %s", err, a.Body)
	}
	if r := s.c.call("GET", "/api/v1/containers", nil); r.Status != 200 {
		t.Errorf("a read: %d %s", r.Status, r.Body)
	}
	if r := s.c.call("GET", "/readyz", nil); notReady && (r.Status != 503 || !strings.Contains(string(r.Body), why)) {
		t.Errorf("/readyz: %d %s", r.Status, r.Body)
	}
	if r := s.c.call("GET", "/healthz", nil); r.Status != 200 {
		t.Errorf("/healthz: %d", r.Status)
	}
	return a.Took
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
	f, err := os.Create(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// The database writes while the file grows, so the free space read
	// once is stale by the time it is asked for: take it in chunks, halving
	// the chunk at each ENOSPC, down to a page.
	var off int64
	for chunk := int64(1 << 20); chunk >= 4096; chunk /= 2 {
		for {
			err := syscall.Fallocate(int(f.Fd()), 0, off, chunk)
			if errors.Is(err, syscall.ENOSPC) {
				break
			}
			if err != nil {
				t.Fatalf("fallocate %d bytes at %d: %v", chunk, off, err)
			}
			off += chunk
		}
	}
	t.Logf("filled %s with %d bytes", mnt, off)
}
