package compile

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/openapi"
)

// Table is an OpenFlow table of br-int. The constants are the pipeline, in
// order: a table's number is its position, and flows name tables only through
// these constants.
type Table int

// The pipeline. Add a table by inserting it at its place: numbers follow.
const (
	TableClassifier Table = iota
	TableSpoofGuard
	TableARPResponder
	TableConntrack
	TableHairpinReturn
	TableServiceLB
	TableAffinityLookup
	TableAffinityDispatch
	TableAffinityLearn
	TableHairpin
	TableEgressPolicy
	TableL3Forwarding
	TableL2Forwarding
	TableIngressPolicy
	TableConntrackCommit
	TableOutput
	numTables
)

var tableNames = [numTables]string{
	TableClassifier:       "Classifier",
	TableSpoofGuard:       "SpoofGuard",
	TableARPResponder:     "ARPResponder",
	TableConntrack:        "Conntrack",
	TableHairpinReturn:    "HairpinReturn",
	TableServiceLB:        "ServiceLB",
	TableAffinityLookup:   "AffinityLookup",
	TableAffinityDispatch: "AffinityDispatch",
	TableAffinityLearn:    "AffinityLearn",
	TableHairpin:          "Hairpin",
	TableEgressPolicy:     "EgressPolicy",
	TableL3Forwarding:     "L3Forwarding",
	TableL2Forwarding:     "L2Forwarding",
	TableIngressPolicy:    "IngressPolicy",
	TableConntrackCommit:  "ConntrackCommit",
	TableOutput:           "Output",
}

// Tables lists the pipeline in order.
func Tables() []Table {
	t := make([]Table, numTables)
	for i := range t {
		t[i] = Table(i)
	}
	return t
}

// String is the table's name.
func (t Table) String() string {
	if t >= 0 && t < numTables {
		return tableNames[t]
	}
	return "Table" + strconv.Itoa(int(t))
}

// gotoTable is the instruction that continues the pipeline at t.
func gotoTable(t Table) string { return "goto_table:" + strconv.Itoa(int(t)) }

// Registers and flags of the pipeline (see the package doc).
const (
	RegNetwork = "reg0"
	RegFlags   = "reg1"
	RegOutPort = "reg2"
	// RegAffinityIP and RegAffinityPort hold the backend a learned
	// session-affinity flow chose (0: none).
	RegAffinityIP   = "reg3"
	RegAffinityPort = "reg4"

	FlagFromLocal  = 0x1
	FlagFromTunnel = 0x2
	// FlagHairpin: the packet is a hairpinned service connection (a backend
	// reaching itself through a VIP), sent back out its in_port.
	FlagHairpin = 0x4
)

// Conntrack zones besides the networks': the hairpin SNAT to the gateway,
// the SNAT of DNS queries to DNSClientAddr, and the SNAT of node-port
// connections to remote backends.
const (
	HairpinZone = 0xfff0
	DNSZone     = 0xfff1
	// GatewaySNATZone: the SNAT to the host's address of a Cluster
	// node-port connection leaving for a remote backend (External access).
	GatewaySNATZone = 0xfff2
)

// DNSClientAddr is the source of every DNS query the node-local resolver
// gets (SNAT in DNSZone): its namespace's next hop (see the package doc,
// DNS steering).
const DNSClientAddr = "169.254.0.1"

// Bridge is the integration bridge every program describes.
const (
	BridgeName     = "br-int"
	BridgeFailMode = "secure"
)

// Owner kinds for Owner.
const (
	KindHost      = "host"
	KindNetwork   = "network"
	KindContainer = "container"
	KindService   = "service"
)

// Cookie bits. The agent owns the top 16 bits (its generation); the
// compiler owns the low 48 (CookieMask), laid out as:
//
//	bit 47     CookieCounted: the agent reports the packet and byte
//	           counters of every flow with this bit (a policy rule's
//	           verdict flows, RuleCookie and ConnCookie).
//	bit 46     CookieConn: on a counted flow, the flow hit once per new
//	           connection the rule decided (ct_state=+new).
//	bits 0-45  the owner hash (OwnerMask).
const (
	CookieMask    uint64 = 1<<48 - 1
	CookieCounted uint64 = 1 << 47
	CookieConn    uint64 = 1 << 46
	OwnerMask     uint64 = 1<<46 - 1
)

// Owner is the cookie (bits 0-45, never 46 or 47) of the flows that exist
// because of one object: the low 46 bits of the first 8 bytes of
// SHA-256(kind NUL id), where kind is KindContainer with the container ID,
// KindNetwork with the network name, or KindHost with the host name. It is
// never 0, the cookie of base flows.
func Owner(kind, id string) uint64 {
	sum := sha256.Sum256([]byte(kind + "\x00" + id))
	c := binary.BigEndian.Uint64(sum[:8]) & OwnerMask
	if c == 0 {
		c = 1
	}
	return c
}

// Port name prefixes; names are at most MaxPortName bytes.
const (
	ContainerPortPrefix = "syc"
	TunnelPortPrefix    = "syt"
	MaxPortName         = 15
)

// ContainerPortName is the OVS port name (host end of the veth) of the
// container with the given ID: "syc" + the first 12 hex digits of the ID
// without dashes (48 bits: random in a UUID v4), or of SHA-256(id) when the
// ID has fewer hex digits than that or is not hex.
func ContainerPortName(id string) string {
	const n = MaxPortName - len(ContainerPortPrefix)
	hexID := strings.ToLower(strings.ReplaceAll(id, "-", ""))
	if len(hexID) < n || !isHex(hexID[:n]) {
		sum := sha256.Sum256([]byte(id))
		hexID = hex.EncodeToString(sum[:])
	}
	return ContainerPortPrefix + hexID[:n]
}

// TunnelPortName is the OVS port name of the tunnel towards peer host:
// "syt" + 12 hex digits of SHA-256(peer). It depends only on the peer, so the
// flows that use it are the same on every host.
func TunnelPortName(peer string) string {
	sum := sha256.Sum256([]byte(peer))
	return TunnelPortPrefix + hex.EncodeToString(sum[:])[:MaxPortName-len(TunnelPortPrefix)]
}

// TunnelType is the type of the tunnel between two hosts: VXLAN when both ask
// for it, else Geneve. Both ends compute the same answer.
func TunnelType(a, b string) string {
	if a == openapi.TunnelVXLAN && b == openapi.TunnelVXLAN {
		return openapi.TunnelVXLAN
	}
	return openapi.TunnelGeneve
}

// SandboxName is the name of a managed sandbox (before any agent prefix).
func SandboxName(container, network string) string { return container + "." + network }

// GatewayMAC is the MAC address of a network's gateway: 0a:58 followed by the
// four bytes of its IPv4 address (10.10.0.1 -> 0a:58:0a:0a:00:01).
func GatewayMAC(gateway string) (string, error) {
	a, err := netip.ParseAddr(gateway)
	if err != nil {
		return "", fmt.Errorf("gateway %q: %v", gateway, err)
	}
	a = a.Unmap()
	if !a.Is4() {
		return "", fmt.Errorf("gateway %q is not IPv4", gateway)
	}
	b := a.As4()
	return fmt.Sprintf("0a:58:%02x:%02x:%02x:%02x", b[0], b[1], b[2], b[3]), nil
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// portRef is how a flow names a port: the agent substitutes the ofport.
func portRef(name string) string { return "${port:" + name + "}" }
