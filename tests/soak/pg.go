package soak

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/switchyard/switchyard/tests/cluster"
)

// postgres is a PostgreSQL cluster of the soak's own: initdb in a temporary
// directory, listening on a free loopback port, stopped and deleted when
// the test ends. Its restart is one of the faults.
type postgres struct {
	bin, dir, data string
	port           int
}

// pgUser runs the server: PostgreSQL refuses to run as root.
const pgUser = "postgres"

// startPostgres initdbs and starts a cluster; t's cleanup stops and
// removes it.
func startPostgres(t testing.TB) *postgres {
	t.Helper()
	bins, _ := filepath.Glob("/usr/lib/postgresql/*/bin/initdb")
	if len(bins) == 0 {
		t.Skip("no PostgreSQL server under /usr/lib/postgresql (deploy/local/deps.sh installs it)")
	}
	sort.Strings(bins)
	// /var/tmp, not t.TempDir(): the server's user must reach it.
	dir, err := os.MkdirTemp("/var/tmp", "switchyard-soak-pg-")
	if err != nil {
		t.Fatal(err)
	}
	p := &postgres{bin: filepath.Dir(bins[len(bins)-1]), dir: dir, data: filepath.Join(dir, "data")}
	t.Cleanup(func() {
		_ = p.pgctl("stop", "-m", "immediate")
		os.RemoveAll(dir)
	})
	if os.Geteuid() == 0 {
		if out, err := exec.Command("chown", pgUser, dir).CombinedOutput(); err != nil {
			t.Fatalf("chown %s: %v %s", dir, err, out)
		}
	}
	if out, err := p.as("initdb", "-D", p.data, "-U", "postgres", "-A", "trust", "--no-sync").CombinedOutput(); err != nil {
		t.Fatalf("initdb: %v\n%s", err, out)
	}
	p.port = cluster.FreePort(t)
	if err := p.start(); err != nil {
		t.Fatal(err)
	}
	return p
}

// as is a command of the server's binaries, run as its user when root.
func (p *postgres) as(name string, args ...string) *exec.Cmd {
	path := filepath.Join(p.bin, name)
	var cmd *exec.Cmd
	if os.Geteuid() == 0 {
		cmd = exec.Command("runuser", append([]string{"-u", pgUser, "--", path}, args...)...)
	} else {
		cmd = exec.Command(path, args...)
	}
	cmd.Dir = "/"
	return cmd
}

func (p *postgres) pgctl(args ...string) error {
	args = append(args, "-D", p.data, "-w", "-t", "60")
	if out, err := p.as("pg_ctl", args...).CombinedOutput(); err != nil {
		return fmt.Errorf("pg_ctl %v: %v\n%s", args, err, out)
	}
	return nil
}

func (p *postgres) start() error {
	opts := fmt.Sprintf("-c listen_addresses=127.0.0.1 -c port=%d -c unix_socket_directories=%s -c fsync=off -c max_connections=200",
		p.port, p.dir)
	return p.pgctl("start", "-l", filepath.Join(p.dir, "postgres.log"), "-o", opts)
}

// URL is the server's admin URL (database postgres): what pgtest creates
// each test's database from.
func (p *postgres) URL() string {
	return "postgres://postgres@127.0.0.1:" + strconv.Itoa(p.port) + "/postgres?sslmode=disable"
}

// crash stops the server the hard way (immediate: no checkpoint,
// connections cut, as a crash).
func (p *postgres) crash() error { return p.pgctl("stop", "-m", "immediate") }

// restart starts the server again after crash, returning once it accepts
// connections (after its crash recovery).
func (p *postgres) restart() error {
	if err := p.start(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		c, err := pgx.Connect(ctx, p.URL())
		if err == nil {
			return c.Close(ctx)
		}
		if ctx.Err() != nil {
			return fmt.Errorf("postgres not back: %w", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
