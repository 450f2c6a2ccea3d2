package main

import (
	"strings"
	"testing"
	"time"

	"github.com/switchyard/switchyard/node/internal/link"
)

func envOf(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

var minimal = map[string]string{"SWITCHYARD_NODE_TOKEN": "t", "SWITCHYARD_UNDERLAY_ADDRESS": "192.168.200.11/24", "SWITCHYARD_HOST": "h1"}

func with(extra map[string]string) map[string]string {
	m := map[string]string{}
	for k, v := range minimal {
		m[k] = v
	}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// A setting that does not parse stops the agent with a message naming the
// variable; it is never silently replaced by its default.
func TestSettingsRefuseBadValues(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
		name string
	}{
		{with(map[string]string{"SWITCHYARD_RESYNC_INTERVAL": "soon"}), nil, "SWITCHYARD_RESYNC_INTERVAL"},
		{with(map[string]string{"SWITCHYARD_RESYNC_INTERVAL": "-5s"}), nil, "SWITCHYARD_RESYNC_INTERVAL"},
		{with(map[string]string{"SWITCHYARD_HEARTBEAT_INTERVAL": "5"}), nil, "SWITCHYARD_HEARTBEAT_INTERVAL"},
		{with(nil), []string{"-heartbeat", "often"}, "SWITCHYARD_HEARTBEAT_INTERVAL"},
		{with(map[string]string{"SWITCHYARD_LOG_LEVEL": "loud"}), nil, "SWITCHYARD_LOG_LEVEL"},
		{with(map[string]string{"SWITCHYARD_UNDERLAY_ADDRESS": "here"}), nil, "SWITCHYARD_UNDERLAY_ADDRESS"},
		{with(map[string]string{"SWITCHYARD_NODE_TOKEN": ""}), nil, "SWITCHYARD_NODE_TOKEN"},
		{with(map[string]string{"SWITCHYARD_POLICY_LOG_RATE": "fast"}), nil, "SWITCHYARD_POLICY_LOG_RATE"},
		{with(map[string]string{"SWITCHYARD_POLICY_LOG_RATE": "0"}), nil, "SWITCHYARD_POLICY_LOG_RATE"},
		{with(nil), []string{"-policy-log-rate", "-3"}, "SWITCHYARD_POLICY_LOG_RATE"},
		{with(map[string]string{"SWITCHYARD_DNS": "yes"}), nil, "SWITCHYARD_DNS"},
		{with(map[string]string{"SWITCHYARD_DNS_UPSTREAM": "resolver.example:53"}), nil, "SWITCHYARD_DNS_UPSTREAM"},
		{with(nil), []string{"-dns-upstream", "192.0.2.1:99999"}, "SWITCHYARD_DNS_UPSTREAM"},
		// Plain HTTP to another host only when asked for; a CA that is no CA.
		{with(map[string]string{"SWITCHYARD_CONTROLLER_URL": "http://10.0.0.1:8080"}), nil, "SWITCHYARD_INSECURE_HTTP=1"},
		{with(map[string]string{"SWITCHYARD_CONTROLLER_URL": "ftp://10.0.0.1"}), nil, "SWITCHYARD_CONTROLLER_URL"},
		{with(map[string]string{"SWITCHYARD_INSECURE_HTTP": "please"}), nil, "SWITCHYARD_INSECURE_HTTP"},
		{with(map[string]string{"SWITCHYARD_CONTROLLER_URL": "https://10.0.0.1:8443"}), []string{"-ca-file", "/nonexistent/ca.pem"}, "SWITCHYARD_CA_FILE"},
	} {
		_, err := parseSettings(c.args, envOf(c.env))
		if err == nil || !strings.Contains(err.Error(), c.name) {
			t.Errorf("%v %v: error %v, want one naming %s", c.env, c.args, err, c.name)
		}
	}
}

// Plain HTTP is fine to loopback, and to another host when asked for; the
// agent's client then speaks to that URL.
func TestSettingsTransport(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		args []string
	}{
		{with(nil), nil}, // the default, http://127.0.0.1:8080
		{with(map[string]string{"SWITCHYARD_CONTROLLER_URL": "http://localhost:8080"}), nil},
		{with(map[string]string{"SWITCHYARD_CONTROLLER_URL": "http://10.0.0.1:8080", "SWITCHYARD_INSECURE_HTTP": "1"}), nil},
		{with(map[string]string{"SWITCHYARD_CONTROLLER_URL": "http://10.0.0.1:8080"}), []string{"-insecure-http", "1"}},
		{with(map[string]string{"SWITCHYARD_CONTROLLER_URL": "https://10.0.0.1:8443"}), []string{"-tls-server-name", "sdn.example"}},
	} {
		s, err := parseSettings(c.args, envOf(c.env))
		if err != nil || s.Agent.API == nil || s.Agent.API.Base != strings.TrimSuffix(s.Agent.ControllerURL, "/") {
			t.Errorf("%v %v: %v", c.env, c.args, err)
		}
	}
}

func TestSettingsParse(t *testing.T) {
	s, err := parseSettings([]string{"-resync", "2s"}, envOf(with(map[string]string{
		"SWITCHYARD_RESYNC_INTERVAL": "1m", "SWITCHYARD_HEARTBEAT_INTERVAL": "1500ms",
		"SWITCHYARD_LOG_LEVEL": "debug", "SWITCHYARD_AGENT_METRICS": "127.0.0.1:9464", "SWITCHYARD_POLICY_LOG_RATE": "25",
	})))
	if err != nil {
		t.Fatal(err)
	}
	if s.Agent.Resync != 2*time.Second || s.Agent.Heartbeat != 1500*time.Millisecond || s.LogLevel.String() != "DEBUG" ||
		s.Agent.MetricsListen != "127.0.0.1:9464" || s.Agent.Address.String() != "192.168.200.11" || s.Agent.Host != "h1" ||
		s.OVS.PolicyLogRate != 25 {
		t.Fatalf("settings %+v", s)
	}
	s, err = parseSettings(nil, envOf(minimal))
	if err != nil || s.Agent.Resync != 30*time.Second || s.Agent.Heartbeat != 5*time.Second || s.LogLevel.String() != "INFO" || s.Agent.MetricsListen != "" ||
		s.OVS.PolicyLogRate != 100 {
		t.Fatalf("defaults: %+v, %v", s, err)
	}
}

func TestSettingsDNS(t *testing.T) {
	s, err := parseSettings(nil, envOf(minimal))
	if err != nil || !s.DNS.On || s.DNS.Netns != link.DNSNetnsName("h1") || s.OVS.DNSNetns != s.DNS.Netns ||
		s.OVS.ResolvConfDir != "/etc/netns" || len(s.DNS.Upstreams) != 0 {
		t.Fatalf("DNS defaults: %+v, %v", s.DNS, err)
	}
	s, err = parseSettings([]string{"-dns-netns", "mydns"}, envOf(with(map[string]string{
		"SWITCHYARD_DNS_UPSTREAM": "192.0.2.1, 192.0.2.2:5353"})))
	if err != nil || s.DNS.Netns != "mydns" || strings.Join(s.DNS.Upstreams, ",") != "192.0.2.1:53,192.0.2.2:5353" {
		t.Fatalf("DNS: %+v, %v", s.DNS, err)
	}
	s, err = parseSettings(nil, envOf(with(map[string]string{"SWITCHYARD_DNS": "off"})))
	if err != nil || s.DNS.On || s.OVS.DNSNetns != "" || s.OVS.ResolvConfDir != "" {
		t.Fatalf("DNS off: %+v %+v, %v", s.DNS, s.OVS, err)
	}
}

func TestMemoryLimit(t *testing.T) {
	env := func(v string) func(string) string {
		return func(k string) string {
			if k == "GOMEMLIMIT" {
				return v
			}
			return ""
		}
	}
	if got := memoryLimit(env("")); got != defaultMemoryLimit {
		t.Errorf("no GOMEMLIMIT: %d, want %d", got, defaultMemoryLimit)
	}
	for _, v := range []string{"off", "200MiB"} {
		if got := memoryLimit(env(v)); got != 0 {
			t.Errorf("GOMEMLIMIT=%s: the agent set %d over it", v, got)
		}
	}
}
