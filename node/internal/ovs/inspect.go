package ovs

// Inspection is a read-only account of the switch adapter's own state, for
// tests of the whole apply (package converge) and for debugging: what the
// switch is known to hold and how the adapter reaches it.
type Inspection struct {
	// OFCtlRuns counts the ovs-ofctl processes started (or spares used)
	// since New.
	OFCtlRuns int64
	// SparePID is the spare ovs-ofctl waiting for br-int's next change
	// (spare.go); 0: none ready.
	SparePID int
	// TablesKnown is set when the switch is known to hold exactly the
	// flows and groups last installed (else the next apply syncs in full).
	TablesKnown bool
	// Watching is set while the restart watcher is connected to br-int.
	Watching bool
	// CanonForms is how many installed flows' canonical spellings the last
	// drift check kept (canon.go).
	CanonForms int
}

// Inspect returns the switch's Inspection. It waits for a running apply.
func (a *Switch) Inspect() Inspection {
	a.mu.Lock()
	defer a.mu.Unlock()
	in := Inspection{OFCtlRuns: a.of.runs.Load(), TablesKnown: a.installed.valid, Watching: a.watching(), CanonForms: len(a.canonOf)}
	a.of.spares.mu.Lock()
	if s := a.of.spares.ready[a.opts.Bridge]; s != nil && s.cmd.Process != nil {
		in.SparePID = s.cmd.Process.Pid
	}
	a.of.spares.mu.Unlock()
	return in
}

// Tuning are the options a running switch may change, from the next
// apply: for tests and benchmarks that compare the two ways.
type Tuning struct {
	// OFCtlDeltas is Options.OFCtlDeltas; AssignedOFPorts is
	// Options.AssignedOFPorts.
	OFCtlDeltas, AssignedOFPorts bool
}

// Tune sets the switch's Tuning.
func (a *Switch) Tune(t Tuning) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.opts.OFCtlDeltas, a.opts.AssignedOFPorts = t.OFCtlDeltas, t.AssignedOFPorts
}
