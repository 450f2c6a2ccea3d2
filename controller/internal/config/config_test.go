package config

import (
	"strings"
	"testing"
	"time"
)

func TestFromEnv(t *testing.T) {
	env := map[string]string{"SWITCHYARD_DATABASE_URL": "postgres://x/y"}
	get := func(k string) string { return env[k] }
	c, err := FromEnv(get)
	if err != nil || c.Listen != "127.0.0.1:8080" || c.ServiceCIDR.String() != "10.96.0.0/16" || c.HeartbeatTimeout != 15*time.Second ||
		c.EventRetention != 24*time.Hour || c.EventRetentionRevisions != 0 || c.DNSDomain != "switchyard.local" ||
		c.MaxInflightWrites != 64 || c.AdmissionWait != time.Second {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for k, v := range map[string]string{"SWITCHYARD_SERVICE_CIDR": "10.96.0.1/16", "SWITCHYARD_HEARTBEAT_TIMEOUT": "soon", "SWITCHYARD_LOG_LEVEL": "loud",
		"SWITCHYARD_EVENT_RETENTION": "a week", "SWITCHYARD_EVENT_RETENTION_REVISIONS": "-1",
		"SWITCHYARD_MAX_INFLIGHT_WRITES": "0", "SWITCHYARD_ADMISSION_WAIT": "-1s"} {
		env[k] = v
		if _, err := FromEnv(get); err == nil {
			t.Errorf("%s=%s accepted", k, v)
		}
		delete(env, k)
	}
	for _, k := range []string{"SWITCHYARD_EVENT_RETENTION", "SWITCHYARD_EVENT_RETENTION_REVISIONS"} {
		for _, bad := range []string{"-1s", "7d", "1e3", " 5"} {
			env[k] = bad
			if _, err := FromEnv(get); err == nil || !strings.Contains(err.Error(), k) {
				t.Errorf("%s=%q: %v", k, bad, err)
			}
		}
		delete(env, k)
	}
	env["SWITCHYARD_EVENT_RETENTION"], env["SWITCHYARD_EVENT_RETENTION_REVISIONS"] = "0", "100000"
	if c, err := FromEnv(get); err != nil || c.EventRetention != 0 || c.EventRetentionRevisions != 100000 {
		t.Errorf("retention settings: %+v %v", c, err)
	}
	for _, bad := range []string{"under_score.local", "-lead.local", "a..b", strings.Repeat("a", 64) + ".local", "spa ce"} {
		env["SWITCHYARD_DNS_DOMAIN"] = bad
		if _, err := FromEnv(get); err == nil || !strings.Contains(err.Error(), "SWITCHYARD_DNS_DOMAIN") {
			t.Errorf("SWITCHYARD_DNS_DOMAIN=%q: %v", bad, err)
		}
	}
	env["SWITCHYARD_DNS_DOMAIN"] = "Corp.Example."
	if c, err := FromEnv(get); err != nil || c.DNSDomain != "corp.example" {
		t.Errorf("dns domain: %q %v", c.DNSDomain, err)
	}
	delete(env, "SWITCHYARD_DNS_DOMAIN")
	delete(env, "SWITCHYARD_DATABASE_URL")
	if _, err := FromEnv(get); err == nil {
		t.Error("missing database URL accepted")
	}
}

func TestTLSSettings(t *testing.T) {
	env := map[string]string{"SWITCHYARD_DATABASE_URL": "postgres://x/y"}
	get := func(k string) string { return env[k] }
	for _, c := range []struct {
		set  map[string]string
		want string // "" ok, else in the error
	}{
		{map[string]string{}, ""},
		{map[string]string{"SWITCHYARD_LISTEN": "localhost:8080"}, ""},
		{map[string]string{"SWITCHYARD_LISTEN": "[::1]:8080"}, ""},
		{map[string]string{"SWITCHYARD_LISTEN": "0.0.0.0:8080"}, "SWITCHYARD_INSECURE_HTTP=1"},
		{map[string]string{"SWITCHYARD_LISTEN": ":8080"}, "SWITCHYARD_INSECURE_HTTP=1"},
		{map[string]string{"SWITCHYARD_LISTEN": "0.0.0.0:8080", "SWITCHYARD_INSECURE_HTTP": "1"}, ""},
		{map[string]string{"SWITCHYARD_LISTEN": "0.0.0.0:8443", "SWITCHYARD_TLS_CERT": "c.pem", "SWITCHYARD_TLS_KEY": "k.pem"}, ""},
		{map[string]string{"SWITCHYARD_TLS_CERT": "c.pem"}, "go together"},
		{map[string]string{"SWITCHYARD_TLS_KEY": "k.pem"}, "go together"},
		{map[string]string{"SWITCHYARD_INSECURE_HTTP": "maybe"}, "SWITCHYARD_INSECURE_HTTP"},
		{map[string]string{"SWITCHYARD_LISTEN": "nowhere"}, "SWITCHYARD_LISTEN"},
	} {
		for k, v := range c.set {
			env[k] = v
		}
		cfg, err := FromEnv(get)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%v: %v", c.set, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%v: %v, want an error saying %q", c.set, err, c.want)
		case err == nil && (cfg.TLSCert != c.set["SWITCHYARD_TLS_CERT"] || cfg.TLSKey != c.set["SWITCHYARD_TLS_KEY"]):
			t.Errorf("%v: cert %q key %q", c.set, cfg.TLSCert, cfg.TLSKey)
		}
		for k := range c.set {
			delete(env, k)
		}
	}
}

func TestDBTimeouts(t *testing.T) {
	env := map[string]string{"SWITCHYARD_DATABASE_URL": "postgres://x/y"}
	get := func(k string) string { return env[k] }
	if c, err := FromEnv(get); err != nil || c.DBAcquireTimeout != time.Second || c.DBConnectTimeout != 2*time.Second {
		t.Fatalf("defaults: %v %v %v", c.DBAcquireTimeout, c.DBConnectTimeout, err)
	}
	env["SWITCHYARD_DB_ACQUIRE_TIMEOUT"], env["SWITCHYARD_DB_CONNECT_TIMEOUT"] = "500ms", "3s"
	if c, err := FromEnv(get); err != nil || c.DBAcquireTimeout != 500*time.Millisecond || c.DBConnectTimeout != 3*time.Second {
		t.Fatalf("set: %v %v %v", c.DBAcquireTimeout, c.DBConnectTimeout, err)
	}
	for _, k := range []string{"SWITCHYARD_DB_ACQUIRE_TIMEOUT", "SWITCHYARD_DB_CONNECT_TIMEOUT"} {
		for _, bad := range []string{"0", "-1s", "soon"} {
			env[k] = bad
			if _, err := FromEnv(get); err == nil || !strings.Contains(err.Error(), k) {
				t.Errorf("%s=%q: %v", k, bad, err)
			}
		}
		delete(env, k)
	}
}

func TestDebugListen(t *testing.T) {
	env := map[string]string{"SWITCHYARD_DATABASE_URL": "postgres://x/y"}
	get := func(k string) string { return env[k] }
	if c, err := FromEnv(get); err != nil || c.DebugListen != "" {
		t.Fatalf("default: %q %v", c.DebugListen, err)
	}
	for _, ok := range []string{"127.0.0.1:6060", "[::1]:6060", "localhost:0"} {
		env["SWITCHYARD_DEBUG_LISTEN"] = ok
		if c, err := FromEnv(get); err != nil || c.DebugListen != ok {
			t.Errorf("%q: %q %v", ok, c.DebugListen, err)
		}
	}
	// The profiler asks for no token: never on an address other hosts reach.
	for _, bad := range []string{"0.0.0.0:6060", "10.0.0.1:6060", ":6060", "6060"} {
		env["SWITCHYARD_DEBUG_LISTEN"] = bad
		if _, err := FromEnv(get); err == nil || !strings.Contains(err.Error(), "SWITCHYARD_DEBUG_LISTEN") {
			t.Errorf("%q: %v", bad, err)
		}
	}
}
