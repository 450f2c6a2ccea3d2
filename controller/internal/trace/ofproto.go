package trace

import (
	"regexp"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/controller/internal/compile"
	"github.com/switchyard/switchyard/openapi"
)

// tableLine is one table lookup of ofproto/trace's text:
// " 12. reg0=0x65,dl_dst=..., priority 100, cookie 0x2771b345466".
var tableLine = regexp.MustCompile(`^\s*(\d+)\. (?:(.*), )?priority (\d+)(?:, cookie (0x[0-9a-f]+))?\s*$`)

// SwitchTrace is ofproto/trace's text, read.
type SwitchTrace struct {
	Flows []openapi.TraceSwitchFlow
	// DatapathActions is the last "Datapath actions:" line: the actions
	// of the last recirculation, the packet's fate.
	DatapathActions string
	Verdict         string
	// Backend is where a NAT the trace simulated sent the packet last
	// ("ip:port", from its "Modified flow:" lines).
	Backend string
}

// ParseOfprotoTrace reads the output of `ovs-appctl ofproto/trace`. Cookies
// lose the agent's generation bits.
func ParseOfprotoTrace(out string, owners Owners) SwitchTrace {
	var st SwitchTrace
	for _, line := range strings.Split(out, "\n") {
		if m := tableLine.FindStringSubmatch(line); m != nil {
			t, _ := strconv.Atoi(m[1])
			prio, _ := strconv.Atoi(m[3])
			var cookie uint64
			if m[4] != "" {
				cookie, _ = strconv.ParseUint(m[4][2:], 16, 64)
			}
			cookie &= compile.CookieMask
			st.Flows = append(st.Flows, openapi.TraceSwitchFlow{Table: t, Priority: prio, Cookie: CookieString(cookie), Owner: owners.Name(cookie)})
			continue
		}
		if a, ok := strings.CutPrefix(strings.TrimSpace(line), "Datapath actions:"); ok {
			st.DatapathActions = strings.TrimSpace(a)
		}
		if m, ok := strings.CutPrefix(strings.TrimSpace(line), "Modified flow:"); ok {
			st.Backend = natTarget(m)
		}
	}
	st.Verdict = datapathVerdict(st.DatapathActions)
	return st
}

// natTarget reads "nw_src=A,tp_src=P,nw_dst=B,tp_dst=Q" as "B:Q".
func natTarget(s string) string {
	var ip, port string
	for _, kv := range strings.Split(strings.TrimSpace(s), ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "nw_dst":
			ip = v
		case "tp_dst":
			port = v
		}
	}
	if ip == "" {
		return ""
	}
	if port == "" || port == "0" {
		return ip
	}
	return ip + ":" + port
}

// datapathVerdict classifies datapath actions: output when the packet
// leaves by a port (a port number, a tunnel push), controller when it only
// goes to userspace (a reject, a logged deny), else drop.
func datapathVerdict(a string) string {
	if a == "" || a == "drop" {
		return VerdictDrop
	}
	controller := false
	for _, tok := range splitTop(a) {
		tok = strings.TrimSpace(tok)
		if _, err := strconv.Atoi(tok); err == nil {
			return VerdictOutput
		}
		if strings.HasPrefix(tok, "tnl_push(") || strings.HasPrefix(tok, "output") {
			return VerdictOutput
		}
		if strings.HasPrefix(tok, "userspace(") {
			controller = true
		}
	}
	if controller {
		return VerdictController
	}
	return VerdictDrop
}
