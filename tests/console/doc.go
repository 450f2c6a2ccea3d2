// Package console tests the web console (webui/) in a real browser: Debian's
// chromium, headless, driven by chromedp against the real controller binary
// and PostgreSQL, with simulated node agents (the node protocol without OVS)
// so that writes realize and containers run. Its benchmarks measure the
// first render of Overview and Topology at 100 hosts / 2,000 containers,
// the bytes a load transfers, and the latency from an API write to the DOM
// change. Tests only: nothing here is imported by a binary, and it must not
// reach into the controller's internals (binaries, environment and REST
// API only).
package console
