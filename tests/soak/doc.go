// Package soak is Switchyard's chaos soak: a lab cluster (tests/cluster,
// Geneve) with two controller replicas on a PostgreSQL cluster of its own,
// driven by random creates, deletes, moves, policy and service changes at a
// steady rate while faults are injected one after another (agent SIGKILL and
// restart, ovs-vswitchd restart, a replica SIGKILL, a PostgreSQL crash
// restart, a host<->controller partition with nftables in the host's
// namespace, an ovsdb-server restart), and an invariant checker (check.go) that runs between
// operations and after every fault: every Ready host's installed flows are
// its program at the revision it acknowledged; no leaked namespaces, OVS
// ports, addresses or NAT rules; the event stream has no gap and no
// duplicate; containers no policy selects reach each other.
//
// `make soak` runs TestSoak (SOAK_DURATION, default 30m) and writes its
// report to docs/soak.md; TestSoakSmoke is the short variant in `make test`
// (one fault of each kind) so that the checker itself is exercised.
//
// It drives the controller and agents only as a user does (REST API,
// binaries, OVS tools): it must not import their internals, and it must
// never touch the suite's shared PostgreSQL (SWITCHYARD_TEST_DATABASE_URL):
// it starts and stops its own (pg.go).
package soak
