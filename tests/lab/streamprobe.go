package lab

import (
	"context"
	"time"
)

// StreamRequest starts Probe every IntervalMs from a probe server, each
// attempt independent of the others, until the stream is stopped.
type StreamRequest struct {
	Probe      ProbeRequest `json:"probe"`
	IntervalMs int          `json:"intervalMs"`
}

// StreamRecord is one attempt of a stream: when it started (Unix
// nanoseconds, the machine's clock) and what it got.
type StreamRecord struct {
	At int64 `json:"at"`
	ProbeResult
}

// Time is when the attempt started.
func (r StreamRecord) Time() time.Time { return time.Unix(0, r.At) }

// ProbeStream is a running stream of probes.
type ProbeStream struct {
	p  *Probe
	id string
}

// Stream starts a probe every interval from p's namespace.
func (p *Probe) Stream(ctx context.Context, probe ProbeRequest, interval time.Duration) (*ProbeStream, error) {
	var out struct {
		ID string `json:"id"`
	}
	req := StreamRequest{Probe: probe, IntervalMs: int(interval.Milliseconds())}
	if err := p.call(ctx, "POST", "/streams", req, &out); err != nil {
		return nil, err
	}
	return &ProbeStream{p: p, id: out.ID}, nil
}

// Records returns the attempts finished so far (in no particular order).
func (s *ProbeStream) Records(ctx context.Context) ([]StreamRecord, error) {
	var out []StreamRecord
	err := s.p.call(ctx, "GET", "/streams/"+s.id, nil, &out)
	return out, err
}

// Stop stops the stream, waits for the attempts in flight, and returns
// every attempt (in no particular order).
func (s *ProbeStream) Stop(ctx context.Context) ([]StreamRecord, error) {
	var out []StreamRecord
	err := s.p.call(ctx, "DELETE", "/streams/"+s.id, nil, &out)
	return out, err
}

// LoadRequest runs Probe Count times, Concurrency at a time.
type LoadRequest struct {
	Probe       ProbeRequest `json:"probe"`
	Count       int          `json:"count"`
	Concurrency int          `json:"concurrency"`
}

// LoadResult is how many probes of a load succeeded or failed (the first
// failure's error) and the wall time it took.
type LoadResult struct {
	OK        int    `json:"ok"`
	Failed    int    `json:"failed"`
	Error     string `json:"error,omitempty"`
	ElapsedUs int64  `json:"elapsedUs"`
}

// Load runs req from p's namespace.
func (p *Probe) Load(ctx context.Context, req LoadRequest) (LoadResult, error) {
	var out LoadResult
	err := p.call(ctx, "POST", "/load", req, &out)
	return out, err
}
