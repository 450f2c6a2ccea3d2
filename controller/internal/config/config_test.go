package config

import (
	"testing"
	"time"
)

func TestFromEnv(t *testing.T) {
	env := map[string]string{"SWITCHYARD_DATABASE_URL": "postgres://x/y"}
	get := func(k string) string { return env[k] }
	c, err := FromEnv(get)
	if err != nil || c.Listen != "127.0.0.1:8080" || c.ServiceCIDR.String() != "10.96.0.0/16" || c.HeartbeatTimeout != 15*time.Second {
		t.Fatalf("defaults: %+v %v", c, err)
	}
	for k, v := range map[string]string{"SWITCHYARD_SERVICE_CIDR": "10.96.0.1/16", "SWITCHYARD_HEARTBEAT_TIMEOUT": "soon", "SWITCHYARD_LOG_LEVEL": "loud"} {
		env[k] = v
		if _, err := FromEnv(get); err == nil {
			t.Errorf("%s=%s accepted", k, v)
		}
		delete(env, k)
	}
	delete(env, "SWITCHYARD_DATABASE_URL")
	if _, err := FromEnv(get); err == nil {
		t.Error("missing database URL accepted")
	}
}
