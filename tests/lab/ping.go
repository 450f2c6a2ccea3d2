package lab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"sync"
	"time"
)

// PingResult is what ping reported.
type PingResult struct {
	Sent, Received int
	// Loss is the packet loss in percent.
	Loss          float64
	Min, Avg, Max time.Duration
	// Lost lists the sequence numbers that got no reply although a later
	// one did: losses for certain. Trailing lists those sent after the
	// last reply (in flight when an interrupted ping stopped, or lost at
	// the very end).
	Lost     []int
	Trailing int
	// Output is ping's combined output.
	Output string
}

var (
	pingCounts = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (?:packets )?received,.*?([\d.]+)% packet loss`)
	pingRTT    = regexp.MustCompile(`= ([\d.]+)/([\d.]+)/([\d.]+)/[\d.]+ ms`)
	pingReply  = regexp.MustCompile(`(?m)bytes from .*icmp_seq=(\d+) `)
)

// Ping runs `ping -c count -i interval dst` inside netns ("" = root
// namespace) and parses its summary. The error is nil when at least one
// reply came back: check Loss or Received for more. With no reply at all,
// or no parsable summary, the error is set (the result is still filled).
func Ping(ctx context.Context, netns string, dst string, count int, interval time.Duration) (PingResult, error) {
	if count <= 0 {
		count = 1
	}
	if interval <= 0 {
		interval = 200 * time.Millisecond
	}
	args := []string{"-n", "-c", strconv.Itoa(count), "-i", fmt.Sprintf("%.3f", interval.Seconds()), "-W", "1", dst}
	out, err := runIn(ctx, netns, nil, "ping", args...)
	r, perr := parsePing(out)
	if perr != nil {
		if err != nil {
			return r, err
		}
		return r, perr
	}
	if r.Received == 0 {
		return r, fmt.Errorf("ping %s from netns %q: no reply (%d sent)", dst, netns, r.Sent)
	}
	return r, nil
}

func parsePing(out string) (PingResult, error) {
	r := PingResult{Output: out}
	m := pingCounts.FindStringSubmatch(out)
	if m == nil {
		return r, fmt.Errorf("no ping summary in %q", out)
	}
	r.Sent, _ = strconv.Atoi(m[1])
	r.Received, _ = strconv.Atoi(m[2])
	r.Loss, _ = strconv.ParseFloat(m[3], 64)
	if m := pingRTT.FindStringSubmatch(out); m != nil {
		r.Min, r.Avg, r.Max = ms(m[1]), ms(m[2]), ms(m[3])
	}
	answered := map[int]bool{}
	last := 0
	for _, m := range pingReply.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		answered[n] = true
		last = max(last, n)
	}
	for n := 1; n < last; n++ {
		if !answered[n] {
			r.Lost = append(r.Lost, n)
		}
	}
	r.Trailing = max(0, r.Sent-last)
	return r, nil
}

// PingRun is a ping running until it is stopped (StartPing).
type PingRun struct {
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
	err  error
	stop func() error
}

// lockedWriter lets ping write while Stop reads.
type lockedWriter struct{ p *PingRun }

func (w lockedWriter) Write(b []byte) (int, error) {
	w.p.mu.Lock()
	defer w.p.mu.Unlock()
	return w.p.out.Write(b)
}

// StartPing starts `ping -i interval dst` inside netns with no count: it
// pings until Stop, or until ctx ends (then it is killed and reports
// nothing). Stop it before the test ends.
func StartPing(ctx context.Context, netns, dst string, interval time.Duration) (*PingRun, error) {
	cmd := command(ctx, netns, "ping", "-n", "-i", fmt.Sprintf("%.3f", interval.Seconds()), "-W", "1", dst)
	p := &PingRun{done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = lockedWriter{p}, lockedWriter{p}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("ping %s from netns %q: %w", dst, netns, err)
	}
	p.stop = func() error { return cmd.Process.Signal(os.Interrupt) }
	go func() {
		defer close(p.done)
		p.err = cmd.Wait()
	}()
	return p, nil
}

// Answered counts the replies so far: a test waits for the first before
// it starts disrupting.
func (p *PingRun) Answered() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(pingReply.FindAllIndex(p.out.Bytes(), -1))
}

// AwaitReply waits up to timeout for the first reply.
func (p *PingRun) AwaitReply(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for p.Answered() == 0 {
		if time.Now().After(deadline) {
			return fmt.Errorf("no ping reply in %s", timeout)
		}
		time.Sleep(2 * time.Millisecond)
	}
	return nil
}

// Stop interrupts ping (SIGINT: it prints its summary), waits for it and
// returns what it reported: check Lost and Trailing. An error means it
// had ended before, or gave no summary.
func (p *PingRun) Stop() (PingResult, error) {
	select {
	case <-p.done:
		p.mu.Lock()
		defer p.mu.Unlock()
		r, _ := parsePing(p.out.String())
		return r, fmt.Errorf("ping ended before it was stopped (%v): %s", p.err, p.out.String())
	default:
	}
	if err := p.stop(); err != nil {
		return PingResult{}, fmt.Errorf("interrupt ping: %w", err)
	}
	<-p.done
	p.mu.Lock()
	defer p.mu.Unlock()
	return parsePing(p.out.String())
}

func ms(s string) time.Duration {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Duration(f * float64(time.Millisecond))
}
