package agent

import (
	"github.com/switchyard/switchyard/node/internal/health"
)

// Health checks: the program's probes run in package health from the
// moment a program is applied (a changed probe starts over); every report
// carries their current verdicts, and a verdict that appears or flips
// pokes the reporter at once instead of waiting for the heartbeat.

// newHealth returns the agent's health manager (metrics in its registry).
func (a *Agent) newHealth() *health.Manager {
	return health.New(health.Options{Host: a.cfg.Host, NetnsPath: a.cfg.NetnsPath, OnChange: a.poke, Registerer: a.m.reg})
}
