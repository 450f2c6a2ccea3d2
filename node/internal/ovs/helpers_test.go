package ovs

import "github.com/switchyard/switchyard/node/internal/testprog"

// The lab tests here drive the switch's own parts (encoders, bundles,
// checked deltas) on a real OVS; those that apply whole programs are
// package converge's. Their programs and probes are package testprog's.

type ctr = testprog.Ctr

var (
	program     = testprog.Program
	newLab      = testprog.NewLab
	flowsOn     = testprog.FlowsOn
	groupsOn    = testprog.GroupsOn
	lines2      = testprog.Lines
	remoteFlows = testprog.RemoteFlows
)
