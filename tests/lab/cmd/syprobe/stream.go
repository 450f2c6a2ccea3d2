package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/switchyard/switchyard/tests/lab"
)

// streams are the running probe streams (POST /streams): a probe started
// every interval, whatever became of the previous ones, each recorded with
// its start time, until stopped; what a benchmark needs to see when a
// path starts or stops working, to the interval.
type streams struct {
	mu   sync.Mutex
	runs map[string]*stream
	next atomic.Int64
}

type stream struct {
	stop chan struct{}
	wg   sync.WaitGroup
	mu   sync.Mutex
	recs []lab.StreamRecord
}

// start is POST /streams {probe, intervalMs} -> {id}.
func (s *streams) start(w http.ResponseWriter, r *http.Request) {
	var req lab.StreamRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.IntervalMs <= 0 {
		reply(w, http.StatusBadRequest, Result{Error: fmt.Sprintf("want {probe, intervalMs > 0}: %v", err)})
		return
	}
	st := &stream{stop: make(chan struct{})}
	id := fmt.Sprint(s.next.Add(1))
	s.mu.Lock()
	s.runs[id] = st
	s.mu.Unlock()
	st.wg.Add(1)
	go func() {
		defer st.wg.Done()
		tick := time.NewTicker(time.Duration(req.IntervalMs) * time.Millisecond)
		defer tick.Stop()
		for {
			st.wg.Add(1)
			go func() {
				defer st.wg.Done()
				at := time.Now()
				res := run(req.Probe)
				st.mu.Lock()
				st.recs = append(st.recs, lab.StreamRecord{At: at.UnixNano(), ProbeResult: res})
				st.mu.Unlock()
			}()
			select {
			case <-st.stop:
				return
			case <-tick.C:
			}
		}
	}()
	reply(w, http.StatusOK, map[string]string{"id": id})
}

// records is GET /streams/{id}: the attempts finished so far.
func (s *streams) records(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st := s.runs[r.PathValue("id")]
	s.mu.Unlock()
	if st == nil {
		reply(w, http.StatusNotFound, Result{Error: "no stream " + r.PathValue("id")})
		return
	}
	st.mu.Lock()
	recs := append([]lab.StreamRecord{}, st.recs...)
	st.mu.Unlock()
	reply(w, http.StatusOK, recs)
}

// end is DELETE /streams/{id}: stops starting probes, waits for those in
// flight, and answers every record.
func (s *streams) end(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	st := s.runs[r.PathValue("id")]
	delete(s.runs, r.PathValue("id"))
	s.mu.Unlock()
	if st == nil {
		reply(w, http.StatusNotFound, Result{Error: "no stream " + r.PathValue("id")})
		return
	}
	close(st.stop)
	st.wg.Wait()
	reply(w, http.StatusOK, st.recs)
}

// load is POST /load {probe, count, concurrency}: the probe count times,
// concurrency at once -> LoadResult.
func load(w http.ResponseWriter, r *http.Request) {
	var req lab.LoadRequest
	if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
		reply(w, http.StatusBadRequest, Result{Error: err.Error()})
		return
	}
	var out lab.LoadResult
	var mu sync.Mutex
	elapsed := spread(req.Count, req.Concurrency, func() {
		res := run(req.Probe)
		mu.Lock()
		defer mu.Unlock()
		if res.OK {
			out.OK++
		} else {
			out.Failed++
			if out.Error == "" {
				out.Error = res.Error
			}
		}
	})
	out.ElapsedUs = elapsed.Microseconds()
	reply(w, http.StatusOK, out)
}

// spread runs f count times on concurrency goroutines (at least one) and
// returns how long that took.
func spread(count, concurrency int, f func()) time.Duration {
	var next atomic.Int64
	var wg sync.WaitGroup
	start := time.Now()
	for range max(1, concurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(count) {
				f()
			}
		}()
	}
	wg.Wait()
	return time.Since(start)
}
