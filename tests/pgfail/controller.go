package pgfail

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/switchyard/switchyard/tests/cluster"
)

// AdminToken is the bootstrap admin token of the tests' controllers.
const AdminToken = "sy_pgfail_admin_token"

// Controller is the controller binary (tests/cluster builds it) running
// on loopback against a database URL, stopped when the test ends.
type Controller struct {
	URL string
	Log string
	cmd *exec.Cmd
}

// StartController starts the controller on dbURL (any URL pgx takes,
// multi-host ones included) with env added, and waits until it is ready.
func StartController(t testing.TB, dbURL string, env ...string) *Controller {
	t.Helper()
	bin := cluster.Build(t)
	c := &Controller{URL: fmt.Sprintf("http://127.0.0.1:%d", cluster.FreePort(t)), Log: filepath.Join(t.TempDir(), "controller.log")}
	f, err := os.Create(c.Log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	c.cmd = exec.Command(bin.Controller)
	c.cmd.Env = append(os.Environ(), append([]string{
		"SWITCHYARD_DATABASE_URL=" + dbURL,
		"SWITCHYARD_LISTEN=" + c.URL[len("http://"):],
		"SWITCHYARD_ADMIN_TOKEN=" + AdminToken,
		"SWITCHYARD_LOG_LEVEL=debug",
	}, env...)...)
	c.cmd.Stdout, c.cmd.Stderr = f, f
	c.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := c.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { c.cmd.Wait(); close(exited) }() //nolint:errcheck // its log says why
	t.Cleanup(func() {
		_ = c.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = c.cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(c.Log)
			t.Logf("controller log:\n%s", tail(string(b), 6000))
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for {
		res, err := http.Get(c.URL + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == 200 {
				return c
			}
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(c.Log)
			t.Fatalf("the controller exited: %s", tail(string(b), 4000))
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("the controller is not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
