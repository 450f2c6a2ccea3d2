package bench

import (
	"bufio"
	"fmt"
	"os/exec"
	"regexp"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// probeInterval is the prober's ping interval.
const probeInterval = 5 * time.Millisecond

// prober pings a server from a client container every probeInterval
// (`ping -D -O`: each line carries ping's own wall-clock timestamp, and an
// echo request still unanswered when the next one leaves is reported) and
// keeps, per sequence number, when the request left: replied ones (receipt
// minus RTT) and unanswered ones (report time minus the interval).
type prober struct {
	cmd     *exec.Cmd
	mu      sync.Mutex
	replied map[int]time.Time
	lost    map[int]time.Time
	wake    chan struct{}
	done    chan struct{}
	tail    []string
}

var (
	pingReply    = regexp.MustCompile(`^\[(\d+\.\d+)\] .*icmp_seq=(\d+) .*time=([\d.]+) ms`)
	pingNoAnswer = regexp.MustCompile(`^\[(\d+\.\d+)\] no answer yet for icmp_seq=(\d+)`)
)

func startProber(b *testing.B, client endpoint, ip string) *prober {
	b.Helper()
	p := &prober{replied: map[int]time.Time{}, lost: map[int]time.Time{}, wake: make(chan struct{}), done: make(chan struct{})}
	p.cmd = exec.Command("ip", "netns", "exec", client.netns, "ping", "-D", "-O", "-n",
		"-i", fmt.Sprintf("%.3f", probeInterval.Seconds()), ip)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	p.cmd.Stderr = p.cmd.Stdout
	if err := p.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.line(sc.Text())
		}
	}()
	return p
}

func stamp(s string) time.Time {
	v, _ := strconv.ParseFloat(s, 64)
	return time.Unix(0, int64(v*1e9))
}

func (p *prober) line(l string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if m := pingReply.FindStringSubmatch(l); m != nil {
		seq, _ := strconv.Atoi(m[2])
		rtt, _ := strconv.ParseFloat(m[3], 64)
		p.replied[seq] = stamp(m[1]).Add(-time.Duration(rtt * float64(time.Millisecond)))
	} else if m := pingNoAnswer.FindStringSubmatch(l); m != nil {
		seq, _ := strconv.Atoi(m[2])
		p.lost[seq] = stamp(m[1]).Add(-probeInterval)
	}
	if p.tail = append(p.tail, l); len(p.tail) > 5 {
		p.tail = p.tail[1:]
	}
	close(p.wake)
	p.wake = make(chan struct{})
}

func (p *prober) stop() {
	_ = p.cmd.Process.Kill()
	_ = p.cmd.Wait()
}

// until waits for cond (evaluated under mu).
func (p *prober) until(timeout time.Duration, cond func() bool) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p.mu.Lock()
		ok, wake, tail := cond(), p.wake, p.tail
		p.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-wake:
		case <-p.done:
			return fmt.Errorf("ping exited; last lines %q", tail)
		case <-deadline.C:
			return fmt.Errorf("not seen after %s; last lines %q", timeout, tail)
		}
	}
}

// lostRun is how many requests in a row must go unanswered to call the
// path dropped.
const lostRun = 10

// waitState waits until the path shows the verdict: a reply (pass), or
// lostRun unanswered requests in a row (drop).
func (p *prober) waitState(drop bool, timeout time.Duration) error {
	return p.until(timeout, func() bool {
		if !drop {
			return len(p.replied) > 0
		}
		_, ok := p.firstDropped(time.Time{})
		return ok
	})
}

// changed waits until the path shows the new verdict for requests sent
// after t0, and returns when the first such request left: the first
// answered one (to allow), or the first of lostRun unanswered in a row
// (to deny).
func (p *prober) changed(t0 time.Time, drop bool, timeout time.Duration) (time.Time, error) {
	var at time.Time
	err := p.until(timeout, func() bool {
		var ok bool
		if drop {
			at, ok = p.firstDropped(t0)
			return ok
		}
		for _, sent := range p.replied {
			if !sent.Before(t0) && (at.IsZero() || sent.Before(at)) {
				at, ok = sent, true
			}
		}
		return ok
	})
	return at, err
}

// firstDropped is the send time of the first request sent at or after t0
// that starts lostRun unanswered requests in a row (under mu).
func (p *prober) firstDropped(t0 time.Time) (time.Time, bool) {
	var best time.Time
	found := false
	for seq, sent := range p.lost {
		if sent.Before(t0) || found && !sent.Before(best) {
			continue
		}
		run := true
		for s := seq; s < seq+lostRun && run; s++ {
			_, l := p.lost[s]
			_, r := p.replied[s]
			run = l && !r
		}
		if run {
			best, found = sent, true
		}
	}
	return best, found
}
