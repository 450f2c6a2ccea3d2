package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/miekg/dns"

	"github.com/switchyard/switchyard/tests/lab"
)

// dnsQueries is POST /dns: every query, concurrently, from this namespace.
func dnsQueries(w http.ResponseWriter, r *http.Request) {
	var qs []lab.DNSQuery
	if err := json.NewDecoder(r.Body).Decode(&qs); err != nil {
		reply(w, http.StatusBadRequest, Result{Error: err.Error()})
		return
	}
	out := make([]lab.DNSAnswer, len(qs))
	var wg sync.WaitGroup
	for i, q := range qs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			out[i] = query(q)
		}()
	}
	wg.Wait()
	reply(w, http.StatusOK, out)
}

// message builds the query message of q.
func message(q lab.DNSQuery) (*dns.Msg, error) {
	t, ok := dns.StringToType[strings.ToUpper(q.Type)]
	if !ok {
		return nil, fmt.Errorf("unknown query type %q", q.Type)
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(q.Name), t)
	return m, nil
}

func client(q lab.DNSQuery) *dns.Client {
	timeout := time.Duration(q.TimeoutMs) * time.Millisecond
	if timeout <= 0 {
		timeout = time.Second
	}
	net := q.Proto
	if net == "" {
		net = "udp"
	}
	return &dns.Client{Net: net, Timeout: timeout}
}

// query runs one query; an answer of any rcode is OK (the exchange worked).
func query(q lab.DNSQuery) lab.DNSAnswer {
	m, err := message(q)
	if err != nil {
		return lab.DNSAnswer{Error: err.Error()}
	}
	start := time.Now()
	in, _, err := client(q).Exchange(m, q.Server)
	a := lab.DNSAnswer{Us: time.Since(start).Microseconds()}
	if err != nil {
		a.Error = err.Error()
		return a
	}
	a.OK, a.Rcode, a.Authoritative = true, dns.RcodeToString[in.Rcode], in.Authoritative
	for _, rr := range in.Answer {
		if a.TTL == 0 || rr.Header().Ttl < a.TTL {
			a.TTL = rr.Header().Ttl
		}
		switch v := rr.(type) {
		case *dns.A:
			a.Answers = append(a.Answers, v.A.String())
		case *dns.SRV:
			a.Answers = append(a.Answers, fmt.Sprintf("%d %d %d %s", v.Priority, v.Weight, v.Port, v.Target))
		case *dns.PTR:
			a.Answers = append(a.Answers, v.Ptr)
		default:
			a.Answers = append(a.Answers, rr.String())
		}
	}
	return a
}

// dnsBench is POST /dnsbench: the query Count times, Concurrency at once,
// each on its own exchange (a new socket per UDP query, as a stub resolver
// does).
func dnsBench(w http.ResponseWriter, r *http.Request) {
	var b lab.DNSBench
	if err := json.NewDecoder(r.Body).Decode(&b); err != nil {
		reply(w, http.StatusBadRequest, Result{Error: err.Error()})
		return
	}
	m, err := message(b.DNSQuery)
	if err != nil {
		reply(w, http.StatusBadRequest, Result{Error: err.Error()})
		return
	}
	c := client(b.DNSQuery)
	out := lab.DNSBenchResult{LatUs: make([]int64, 0, b.Count)}
	var mu sync.Mutex
	elapsed := spread(b.Count, b.Concurrency, func() {
		t0 := time.Now()
		in, _, err := c.Exchange(m.Copy(), b.Server)
		us := time.Since(t0).Microseconds()
		mu.Lock()
		defer mu.Unlock()
		switch {
		case err != nil:
			out.Failed++
			if out.Error == "" {
				out.Error = err.Error()
			}
		case in.Rcode != b.WantRcode():
			out.Failed++
			if out.Error == "" {
				out.Error = "rcode " + dns.RcodeToString[in.Rcode]
			}
		default:
			out.OK++
			out.LatUs = append(out.LatUs, us)
		}
	})
	out.ElapsedUs = elapsed.Microseconds()
	reply(w, http.StatusOK, out)
}
