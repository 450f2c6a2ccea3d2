// Package trace answers "why can (or can't) A reach B" from what the
// controller holds: it resolves a trace request against the intent
// (compile.Snapshot), computes the intent layer (the expected path, the
// service backend candidates, the NAT on the way, every policy consulted
// egress then ingress with the deciding rule, via package policy and
// package service), and simulates the packet through the compiled programs
// of the hosts on its way (Sim: a flow-matching simulator over the ovs-ofctl
// text the compiler emits: match fields, conjunctions, registers, resubmit
// and goto_table, ct with NAT, select groups, output). It then compares
// those with what the agents report of their real switches (ofproto/trace
// text, parsed by ParseOfprotoTrace) and with a live probe, and concludes,
// flagging every disagreement with the host and flow.
//
// Connection state: the simulator assumes the first packet of a new
// connection, so every ct action yields +trk+new (plus +dnat/+snat where
// the action translates); the same assumption is handed to ofproto/trace as
// --ct-next flags. A select group takes the bucket of the backend the
// intent layer chose (the first usable one in bucket order).
//
// It is PURE: no I/O, no clock, no goroutines; it must not talk to agents
// or the database (the API does, and hands the answers in), and it must not
// change anything it is given.
package trace
