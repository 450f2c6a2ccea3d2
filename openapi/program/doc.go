// Package program defines how programs of the node protocol
// (openapi.Program, openapi.ProgramDelta) are compared, diffed, patched and
// digested. The controller's compiler uses it to order flows and digest the
// programs it builds, and to compute deltas; a node agent uses it to apply a
// delta to its current program and to check the digest of what it applied.
// Compose turns a chain of deltas into one: the controller sends an agent
// several changes behind one delta instead of its whole program.
//
// It is PURE: no I/O, no clock, no randomness, no goroutines; the same input
// always yields the same output. It must not know how programs are compiled:
// it depends only on the protocol types in package openapi.
//
// # Flow order
//
// CompareFlows is the order of a program's flows: table, priority
// descending, match, then cookie and actions so that the order is total.
// Programs built by the compiler keep their flows in that order; Diff and
// Patch accept flows in any order and Patch returns them sorted.
//
// # Digest
//
// A program's digest is a SHA-256 over its host, bridge, element counts and
// two 64-bit sums of per-element SHA-256 hashes (flows, tunnel ports,
// container ports, groups, DNS records, health probes; the counts of the
// last two enter only when not both zero, so programs without them kept
// their digests). DNS records and health probes are keyed elements like
// ports and groups (by DNSRecord.Key, HealthProbe.Key): a changed one is
// removed and added by key. Sums make it order-independent and incremental:
// a change updates it in O(changed elements). Digest computes it from a
// whole program; a Sums accumulates it element by element (FlowKey,
// TunnelKey, ContainerKey, GroupKey, DNSKey, HealthKey give the element hashes). It does not
// cover the program's revision. Changing how it is computed changes every
// program's digest: controllers and agents of different versions would no
// longer agree.
package program
