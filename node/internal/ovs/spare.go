package ovs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Starting ovs-ofctl costs about 4 ms on a busy 2-vCPU host (exec, dynamic
// linking), more than the rest of a one-container change. The delta path
// sends what the encoder knows as native flow_mods (ofbundle.go); the
// bundles it cannot encode go to a spare: an `ovs-ofctl bundle <bridge> <fifo>`
// started ahead of time, whose flow file is a FIFO the adapter holds open
// for writing once ovs-ofctl has opened it for reading (so the spare waits
// in read). ovs-ofctl reads and parses the whole file before it connects to
// the switch, so the spare holds nothing but its process. A bundle is
// written into the FIFO, the spare connects, sends it and exits, and the
// next spare is started in the background. Anything unexpected (no spare, the spare gone) falls
// back to starting ovs-ofctl as usual: same program, same file, same
// errors.

type spare struct {
	cmd            *exec.Cmd
	fifo           string
	w              *os.File // the FIFO's write end, once the spare reads it
	stdout, stderr bytes.Buffer
	done           chan error
}

// spares holds at most one spare bundle process per bridge.
type spares struct {
	mu     sync.Mutex
	ready  map[string]*spare
	seq    int
	closed bool
	spawn  *spawner
}

// spawner starts processes from one OS thread that lives until the
// adapter closes. A spare is started with Pdeathsig (it must not outlive
// the agent, waiting on its FIFO for ever), and Pdeathsig fires when the
// thread that started the child ends; Go ends threads that a goroutine
// locked and left locked (package link does, for namespace work), so a
// child started from any goroutine could be killed at random.
type spawner struct {
	reqs chan spawnReq
	stop chan struct{}
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), stop: make(chan struct{})}
	go func() {
		// Never unlocked: the thread ends with this goroutine, at close.
		runtime.LockOSThread()
		for {
			select {
			case r := <-s.reqs:
				r.err <- r.cmd.Start()
			case <-s.stop:
				return
			}
		}
	}()
	return s
}

// start starts cmd from the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	r := spawnReq{cmd: cmd, err: make(chan error, 1)}
	select {
	case s.reqs <- r:
		return <-r.err
	case <-s.stop:
		return errors.New("switch adapter closed")
	}
}

// bundle runs `ovs-ofctl bundle` with file, through a spare when one is
// ready, and starts the next spare.
func (o *ofctl) bundle(ctx context.Context, bridge string, file []byte) (string, error) {
	s := o.takeSpare(bridge)
	defer o.prepareSpare(bridge)
	if s == nil {
		return o.run(ctx, bridge, file, "bundle")
	}
	out, err, ok := s.feed(ctx, file)
	if !ok {
		return o.run(ctx, bridge, file, "bundle")
	}
	o.runs.Add(1)
	return out, err
}

// spareReady reports whether a spare for bridge is waiting.
func (o *ofctl) spareReady(bridge string) bool {
	o.spares.mu.Lock()
	defer o.spares.mu.Unlock()
	return o.spares.ready[bridge] != nil
}

func (o *ofctl) takeSpare(bridge string) *spare {
	o.spares.mu.Lock()
	defer o.spares.mu.Unlock()
	s := o.spares.ready[bridge]
	delete(o.spares.ready, bridge)
	return s
}

// prepareSpare starts a spare for bridge in the background unless one is
// ready.
func (o *ofctl) prepareSpare(bridge string) {
	go func() {
		sp := &o.spares
		sp.mu.Lock()
		if sp.closed || sp.ready[bridge] != nil {
			sp.mu.Unlock()
			return
		}
		sp.seq++
		fifo := filepath.Join(o.tmp, fmt.Sprintf("%s-spare-%d.flows", bridge, sp.seq))
		if sp.spawn == nil {
			sp.spawn = newSpawner()
		}
		spawn := sp.spawn
		sp.mu.Unlock()
		s, err := o.startSpare(spawn, bridge, fifo)
		if err != nil {
			return // the next bundle starts ovs-ofctl itself
		}
		if err := s.connect(); err != nil {
			s.kill()
			return
		}
		sp.mu.Lock()
		defer sp.mu.Unlock()
		if sp.closed || sp.ready[bridge] != nil {
			s.kill()
			return
		}
		if sp.ready == nil {
			sp.ready = map[string]*spare{}
		}
		sp.ready[bridge] = s
	}()
}

func (o *ofctl) startSpare(spawn *spawner, bridge, fifo string) (*spare, error) {
	if err := unix.Mkfifo(fifo, 0o600); err != nil {
		return nil, err
	}
	s := &spare{fifo: fifo, done: make(chan error, 1)}
	s.cmd = exec.Command(o.bin, "-O", "OpenFlow15", "--no-names", "bundle", "unix:"+o.socket(bridge), fifo)
	s.cmd.Env = append(os.Environ(), "OVS_RUNDIR="+o.rundir)
	s.cmd.Stdout, s.cmd.Stderr = &s.stdout, &s.stderr
	// A spare must not outlive the agent (it would wait on its FIFO for
	// ever).
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := spawn.start(s.cmd); err != nil {
		os.Remove(fifo)
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait() }()
	return s, nil
}

// spareWait bounds how long a new spare may take to open its FIFO.
const spareWait = 10 * time.Second

// connect opens the FIFO's write end once the spare has opened it for
// reading (an open without a reader fails at once; it is retried every
// millisecond, in the background, while the spare starts).
func (s *spare) connect() error {
	give := time.NewTimer(spareWait)
	defer give.Stop()
	for {
		fd, err := unix.Open(s.fifo, unix.O_WRONLY|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
		if err == nil {
			if err := unix.SetNonblock(fd, false); err != nil {
				unix.Close(fd)
				return err
			}
			s.w = os.NewFile(uintptr(fd), s.fifo)
			return nil
		}
		if !errors.Is(err, unix.ENXIO) {
			return err
		}
		tick := time.NewTimer(time.Millisecond)
		select {
		case e := <-s.done:
			tick.Stop()
			s.done <- e
			return fmt.Errorf("spare ovs-ofctl exited: %v: %s", e, s.stderr.String())
		case <-give.C:
			tick.Stop()
			return errors.New("spare ovs-ofctl did not open its file")
		case <-tick.C:
		}
	}
}

// feed writes file to the spare and waits for it. ok is false when the
// spare was not there to read it (nothing was sent to the switch).
func (s *spare) feed(ctx context.Context, file []byte) (out string, err error, ok bool) {
	defer os.Remove(s.fifo)
	select {
	case e := <-s.done: // it died waiting
		s.done <- e
		s.kill()
		return "", nil, false
	default:
	}
	_, werr := s.w.Write(file)
	s.w.Close()
	s.w = nil
	if werr != nil {
		// The spare went away before reading the file (EPIPE): it parses
		// the whole file before connecting, so it sent nothing.
		<-s.done
		return "", nil, false
	}
	select {
	case err = <-s.done:
	case <-ctx.Done():
		s.kill()
		return "", ctx.Err(), true
	}
	if err != nil {
		msg := strings.ReplaceAll(strings.TrimSpace(s.stderr.String()), s.fifo, "<file>")
		return s.stdout.String(), &ofctlError{args: []string{"bundle"}, msg: msg, err: err}, true
	}
	return s.stdout.String(), nil, true
}

func (s *spare) kill() {
	if s.w != nil {
		s.w.Close()
	}
	if s.cmd.Process != nil {
		s.cmd.Process.Kill()
	}
	<-s.done
	os.Remove(s.fifo)
}

// closeSpares stops the spares; none is started after.
func (o *ofctl) closeSpares() {
	o.spares.mu.Lock()
	o.spares.closed = true
	ready := o.spares.ready
	o.spares.ready = nil
	spawn := o.spares.spawn
	o.spares.mu.Unlock()
	for _, s := range ready {
		s.kill()
	}
	if spawn != nil {
		close(spawn.stop)
	}
}
