package lab

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"time"
)

// PingResult is what ping reported.
type PingResult struct {
	Sent, Received int
	// Loss is the packet loss in percent.
	Loss          float64
	Min, Avg, Max time.Duration
	// Output is ping's combined output.
	Output string
}

var (
	pingCounts = regexp.MustCompile(`(\d+) packets transmitted, (\d+) (?:packets )?received,.*?([\d.]+)% packet loss`)
	pingRTT    = regexp.MustCompile(`= ([\d.]+)/([\d.]+)/([\d.]+)/[\d.]+ ms`)
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
	return r, nil
}

func ms(s string) time.Duration {
	f, _ := strconv.ParseFloat(s, 64)
	return time.Duration(f * float64(time.Millisecond))
}
