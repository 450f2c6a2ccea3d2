// Package bench holds Switchyard's end-to-end benchmarks: convergence (REST
// call to flows on every switch), datapath throughput and latency next to a
// bare OVS bridge, and the agent's memory. They run the real controller and
// agent binaries in the lab (tests/cluster, tests/lab) against a real
// PostgreSQL, and are Go benchmarks: `go test -run '^$' -bench . ./tests/bench/`
// with SWITCHYARD_TEST_DATABASE_URL set, as root. Without root, Open
// vSwitch, iperf3 or the database they skip. docs/benchmarks.md has the
// figures and how to read them.
//
// Benchmarks here observe the system from outside (REST API, the switches'
// OpenFlow and OVSDB, process logs, /proc); they must not import the
// controller's or agent's internals.
package bench
