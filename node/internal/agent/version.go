package agent

import (
	"fmt"
	"runtime/debug"
)

// version is the agent's release, set at link time
// (-ldflags "-X github.com/switchyard/switchyard/node/internal/agent.version=v1.2.3").
var version = "dev"

// Version is the agent's version as it registers it: the release, or for a
// development build the commit it was built from (and whether the tree was
// modified), and the Go version.
func Version() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	v := version
	var rev, dirty string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "+modified"
			}
		}
	}
	if v == "dev" && rev != "" {
		v = fmt.Sprintf("dev-%.12s%s", rev, dirty)
	}
	return v + " (" + info.GoVersion + ")"
}
