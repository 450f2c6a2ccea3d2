package lab

// What it takes to run Switchyard's node agent (switchyard-agent) on a lab
// host. The lab does not start agents itself; tests/cluster and the demo
// lab (cmd/sylab) do, with this environment, by Lab.Start in Host.Netns.

// AgentEnv is the environment of the agent of this host: it reaches the
// controller at controllerURL (over the underlay, see Lab.Expose) with the
// node token, drives this host's own OVS (userspace datapath) and the lab's
// tunnel type, moves the underlay address onto br-phy, names its managed
// sandboxes with SandboxPrefix, and resyncs and reports often (2 s, 1 s) so
// tests see changes quickly. The lab speaks plain HTTP over its private
// underlay, so it allows it (SWITCHYARD_INSECURE_HTTP; docs/security.md).
func (h *Host) AgentEnv(controllerURL, token string) []string {
	return []string{
		"SWITCHYARD_CONTROLLER_URL=" + controllerURL,
		"SWITCHYARD_INSECURE_HTTP=1",
		"SWITCHYARD_HOST=" + h.Name,
		"SWITCHYARD_NODE_TOKEN=" + token,
		"SWITCHYARD_OVSDB=" + h.DB,
		"SWITCHYARD_OVS_RUNDIR=" + h.Dir,
		"SWITCHYARD_DATAPATH=netdev",
		"SWITCHYARD_TUNNEL_TYPE=" + h.lab.Tunnel,
		"SWITCHYARD_UNDERLAY_IFACE=" + h.UnderlayIface,
		"SWITCHYARD_UNDERLAY_ADDRESS=" + h.UnderlayAddr.String(),
		"SWITCHYARD_SANDBOX_PREFIX=" + h.lab.SandboxPrefix(h.Name),
		// The lab's prefix, so that the lab deletes it with the rest.
		"SWITCHYARD_DNS_NETNS=" + h.lab.Prefix() + "dns-" + h.Name,
		"SWITCHYARD_RESYNC_INTERVAL=2s",
		"SWITCHYARD_HEARTBEAT_INTERVAL=1s",
	}
}

// SandboxPrefix is the prefix of the managed sandbox namespaces of host's
// agent, "sy-<ID>-<host>-": the lab's hosts share one kernel, so each gets
// its own, and the lab deletes them with its other namespaces.
func (l *Lab) SandboxPrefix(host string) string { return l.Prefix() + host + "-" }

// Sandbox is the namespace of the managed container on host: the agent
// names it SandboxPrefix(host) + "<container>.<network>".
func (l *Lab) Sandbox(host, container, network string) string {
	return l.SandboxPrefix(host) + container + "." + network
}
