// Package pgfail tests what the controller does when PostgreSQL fails
// (docs/failure-matrix-pg.md, rows 1, 2 and 9 of docs/failure-matrix.md):
// stopped, failed over to a streaming standby, read-only, out of disk. Its
// PostgreSQL servers are its own: clusters made with initdb in temporary
// directories, on loopback ports, started and stopped by the tests, always
// removed at the end. It must never stop, reconfigure or fill the server
// of SWITCHYARD_TEST_DATABASE_URL that the rest of the suite shares.
package pgfail

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/switchyard/switchyard/tests/cluster"
)

// Server is one PostgreSQL cluster of a test: its data directory, port and
// socket directory live under one temporary directory owned by the
// postgres user (the server refuses to run as root).
type Server struct {
	Name string
	Dir  string // the temporary directory: data/, run/, log
	Port int
	bin  string
}

// pgBin is the newest installed PostgreSQL's bin directory (as
// deploy/local/postgres.sh finds it).
func pgBin(t testing.TB) string {
	t.Helper()
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	sort.Slice(dirs, func(i, j int) bool {
		vi, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[i])))
		vj, _ := strconv.Atoi(filepath.Base(filepath.Dir(dirs[j])))
		return vi < vj
	})
	if len(dirs) == 0 {
		t.Skip("no PostgreSQL server under /usr/lib/postgresql (run deploy/local/deps.sh)")
	}
	return dirs[len(dirs)-1]
}

// newServer makes the directories of a server and picks its port.
func newServer(t testing.TB, name string) *Server {
	t.Helper()
	if os.Getuid() != 0 {
		t.Skip("needs root (the servers run as the postgres user)")
	}
	dir, err := os.MkdirTemp("", "sypg-"+name+"-")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{Name: name, Dir: dir, Port: cluster.FreePort(t), bin: pgBin(t)}
	t.Cleanup(func() {
		s.Stop(t, "immediate")
		os.RemoveAll(dir)
	})
	u, err := user.Lookup("postgres")
	if err != nil {
		t.Skipf("no postgres user: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	s.run(t, "mkdir", "-m", "700", s.data(), s.sock())
	return s
}

// Primary starts a new cluster, primed for a streaming standby.
func Primary(t testing.TB, name string) *Server {
	t.Helper()
	s := newServer(t, name)
	s.pg(t, "initdb", "-D", s.data(), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync")
	s.writeConf(t, "wal_level = replica\nmax_wal_senders = 5\nhot_standby = on\n")
	if err := os.WriteFile(filepath.Join(s.data(), "pg_hba.conf"), []byte(
		"local all all trust\nhost all all 127.0.0.1/32 trust\nlocal replication all trust\nhost replication all 127.0.0.1/32 trust\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.Start(t)
	return s
}

// Standby makes a streaming standby of primary with pg_basebackup -R and
// starts it.
func Standby(t testing.TB, name string, primary *Server) *Server {
	t.Helper()
	s := newServer(t, name)
	s.run(t, "rmdir", s.data())
	s.pg(t, "pg_basebackup", "-h", "127.0.0.1", "-p", strconv.Itoa(primary.Port), "-U", "postgres",
		"-D", s.data(), "-R", "-X", "stream", "--checkpoint=fast", "--no-sync")
	s.run(t, "chmod", "700", s.data())
	s.writeConf(t, "")
	s.Start(t)
	return s
}

func (s *Server) data() string { return filepath.Join(s.Dir, "data") }
func (s *Server) sock() string { return filepath.Join(s.Dir, "run") }

// writeConf writes the settings every start uses: this server's port and
// sockets (a standby's copy of the primary's is replaced), plus extra.
func (s *Server) writeConf(t testing.TB, extra string) {
	t.Helper()
	conf := fmt.Sprintf("port = %d\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '%s'\nfsync = off\nmax_connections = 100\n%s",
		s.Port, s.sock(), extra)
	f := filepath.Join(s.data(), "postgresql.conf")
	b, err := os.ReadFile(f)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), "include_if_exists = 'pgfail.conf'") {
		b = append(b, "\ninclude_if_exists = 'pgfail.conf'\n"...)
	}
	if err := os.WriteFile(f, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.data(), "pgfail.conf"), []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	s.run(t, "chown", "-R", "postgres:postgres", s.data())
}

// Start starts the server and waits until it accepts connections.
func (s *Server) Start(t testing.TB) {
	t.Helper()
	s.pg(t, "pg_ctl", "start", "-D", s.data(), "-l", filepath.Join(s.Dir, "log"), "-w", "-t", "60", "-s")
}

// Stop stops the server (mode: smart, fast or immediate) if it runs.
func (s *Server) Stop(t testing.TB, mode string) {
	t.Helper()
	if _, err := os.Stat(filepath.Join(s.data(), "postmaster.pid")); err != nil {
		return
	}
	if out, err := s.cmd("pg_ctl", "stop", "-D", s.data(), "-m", mode, "-w", "-t", "60", "-s").CombinedOutput(); err != nil {
		t.Logf("pg_ctl stop %s: %v: %s", s.Name, err, out)
	}
}

// Promote turns a standby into a primary and waits until it takes writes.
func (s *Server) Promote(t testing.TB) {
	t.Helper()
	s.pg(t, "pg_ctl", "promote", "-D", s.data(), "-w", "-t", "60", "-s")
}

// URL is the URL of database db on this server.
func (s *Server) URL(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// Exec runs SQL statements on database db, each on its own (ALTER SYSTEM
// and CREATE DATABASE refuse transaction blocks).
func (s *Server) Exec(t testing.TB, db string, sql ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		t.Fatalf("%s: %v", s.Name, err)
	}
	defer conn.Close(ctx)
	for _, q := range sql {
		if _, err := conn.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %s: %v", s.Name, q, err)
		}
	}
}

// cmd is a PostgreSQL program run as the postgres user, from /.
func (s *Server) cmd(prog string, args ...string) *exec.Cmd {
	c := exec.Command("runuser", append([]string{"-u", "postgres", "--", filepath.Join(s.bin, prog)}, args...)...)
	c.Dir = "/"
	return c
}

func (s *Server) pg(t testing.TB, prog string, args ...string) {
	t.Helper()
	if out, err := s.cmd(prog, args...).CombinedOutput(); err != nil {
		log, _ := os.ReadFile(filepath.Join(s.Dir, "log"))
		t.Fatalf("%s: %s %v: %v\n%s\n%s", s.Name, prog, args, err, out, tail(string(log), 2000))
	}
}

// run runs a plain command as the postgres user.
func (s *Server) run(t testing.TB, prog string, args ...string) {
	t.Helper()
	c := exec.Command("runuser", append([]string{"-u", "postgres", "--", prog}, args...)...)
	c.Dir = "/"
	if prog == "chown" {
		c = exec.Command(prog, args...)
	}
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("%s %v: %v: %s", prog, args, err, out)
	}
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// Query returns the first column of the first row of query on database db,
// as text.
func (s *Server) Query(t testing.TB, db, query string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, s.URL(db))
	if err != nil {
		return "", err
	}
	defer conn.Close(ctx)
	var v string
	err = conn.QueryRow(ctx, query).Scan(&v)
	return v, err
}

// Freeze stops every process of the server with SIGSTOP (a server that
// accepts connections but never answers: a host that vanished without
// resetting TCP); Thaw (also run when the test ends) resumes them.
func (s *Server) Freeze(t testing.TB) {
	t.Helper()
	pids := s.pids(t)
	t.Cleanup(func() { s.signal(pids, syscall.SIGCONT) })
	s.signal(pids, syscall.SIGSTOP)
}

// Thaw resumes the processes Freeze stopped.
func (s *Server) Thaw(t testing.TB) {
	t.Helper()
	s.signal(s.pids(t), syscall.SIGCONT)
}

func (s *Server) signal(pids []int, sig syscall.Signal) {
	for _, p := range pids {
		_ = syscall.Kill(p, sig)
	}
}

// pids are the postmaster's and its children's process ids.
func (s *Server) pids(t testing.TB) []int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.data(), "postmaster.pid"))
	if err != nil {
		t.Fatal(err)
	}
	pm, err := strconv.Atoi(strings.SplitN(string(b), "\n", 2)[0])
	if err != nil {
		t.Fatal(err)
	}
	pids := []int{pm}
	stats, _ := filepath.Glob("/proc/[0-9]*/stat")
	for _, f := range stats {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...: comm may hold spaces, so split after ')'.
		i := strings.LastIndexByte(string(b), ')')
		fields := strings.Fields(string(b[i+1:]))
		if len(fields) > 1 && fields[1] == strconv.Itoa(pm) {
			pid, _ := strconv.Atoi(filepath.Base(filepath.Dir(f)))
			pids = append(pids, pid)
		}
	}
	return pids
}
