package ovs

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/switchyard/switchyard/openapi"
)

// goldenFlows are the flows of the compiler's golden programs
// (controller/internal/compile/testdata), with the ofports their ports
// get (1, 2, ... in order of appearance), plus the flows of this
// package's test programs (load, resubmit, in_port, tcp ports).
func goldenFlows(t testing.TB) ([]openapi.Flow, map[string]int) {
	t.Helper()
	files, err := filepath.Glob("../../../controller/internal/compile/testdata/*.golden")
	if err != nil || len(files) == 0 {
		t.Fatalf("golden files: %v", err)
	}
	head := regexp.MustCompile(`^table=(\d+), priority=(\d+), cookie=(0x[0-9a-f]+)(?:, (.*?))? actions=(.*)$`)
	portRef := regexp.MustCompile(`\$\{port:([^}]+)\}`)
	seen := map[string]bool{}
	var out []openapi.Flow
	ports := map[string]int{}
	add := func(f openapi.Flow) {
		k := fmt.Sprint(f)
		if seen[k] {
			return
		}
		seen[k] = true
		if !nativeOK(t, f) {
			return
		}
		for _, m := range portRef.FindAllStringSubmatch(f.Match+f.Actions, -1) {
			if ports[m[1]] == 0 {
				ports[m[1]] = len(ports) + 1
			}
		}
		out = append(out, f)
	}
	for _, file := range files {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(line, "table=") {
				continue
			}
			m := head.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("%s: unparsable golden flow %q", file, line)
			}
			var f openapi.Flow
			fmt.Sscan(m[1], &f.Table)
			fmt.Sscan(m[2], &f.Priority)
			fmt.Sscanf(m[3], "0x%x", &f.Cookie)
			f.Match, f.Actions = m[4], m[5]
			add(f)
		}
	}
	p := program("h1", 1, []ctr{{N: 1, Host: "h1"}, {N: 2, Host: "h2"}}, map[string]string{"h2": "192.0.2.2"}, "geneve")
	for _, f := range p.Flows {
		add(f)
	}
	for _, f := range remoteFlows(300) {
		add(f)
	}
	// Forms the compiler may emit tomorrow: masks, UDP, partial loads.
	for _, f := range [][2]string{
		{"ip,nw_dst=10.1.0.0/16,reg1=0x1/0x1", "set_field:0x5/0xff->tun_id,output:7"},
		{"udp,tp_dst=53,nw_src=10.0.0.0/255.0.255.0", "dec_ttl,resubmit(,4)"},
		{"dl_dst=01:00:00:00:00:00/01:00:00:00:00:00,tun_id=0x5/0xff", "load:0x3->NXM_NX_REG3[4..5],output:NXM_NX_REG2[0..15]"},
		{"tcp,tp_src=1024,reg7=0xffffffff", "load:0x1->NXM_NX_REG7[7],move:NXM_NX_REG1[0..7]->NXM_NX_REG2[8..15],IN_PORT"},
		{"arp,arp_sha=0a:58:0a:01:00:02/ff:ff:ff:00:00:00,arp_spa=10.1.0.0/24,arp_tha=00:00:00:00:00:01", "set_field:10.1.0.1->arp_tpa,set_field:1->arp_op,output:3"},
		{"dl_type=0x0800,nw_proto=17,udp_src=68,ip_dst=255.255.255.255", "set_field:0a:58:0a:01:00:02->eth_dst,goto_table:9"},
		{"eth_type=0x0806,arp_tpa=10.1.0.9", "goto_table:9"},
		{"icmp,icmp_type=3", "set_field:1->icmp_code,set_field:10.0.0.1->nw_dst,output:2"},
		// Conntrack and policy forms beyond the goldens' (ct_state flags,
		// ct zones and tables, conjunctions, controller properties, SCTP).
		{"ct_state=-new+est-rel-inv+trk,ip", "ct(commit,table=7,zone=5)"},
		{"ct_state=+trk+snat+dnat,tcp,tp_src=0x400/0xfc00", "ct(table=6)"},
		{"ct_state=-trk,ip,nw_dst=10.2.0.0/16", "ct(zone=NXM_NX_REG1[16..31],table=8)"},
		{"tcp,tcp_dst=0x50/0xfff8", "ct(commit,zone=reg0[0..15])"},
		{"ip,reg6=9", "ct(zone=0xffff),goto_table:9"},
		{"conj_id=0x10,ct_state=+rpl+trk,ip", "controller(meter_id=7)"},
		{"conj_id=4294967295,ip", "controller(userdata=0102AbcD,reason=no_match),goto_table:8"},
		{"sctp,sctp_dst=80,sctp_src=0x100/0xff00", "conjunction(0x7,2/3),conjunction(4294967295,64/64)"},
		{"udp,tp_dst=0x8000/0x8000,reg3=0x2", "conjunction(0,1/2)"},
		{"sctp,tp_src=9", "controller(reason=invalid_ttl,userdata=00.01.02,meter_id=0x2)"},
		{"ct_state=+inv+trk,reg4=1", "controller(userdata=ff,reason=action)"},
		{"ct_state=+new+trk,reg4=2", "controller(userdata=00.00.00.00.00.00.00.01.02.02.03)"},
	} {
		add(openapi.Flow{Table: 5, Priority: 33, Cookie: 0x77, Match: f[0], Actions: f[1]})
	}
	return out, ports
}

// renderAll renders flows as the applier does (generation 3) and returns
// their keys and lines.
// nativeOK reports whether the native encoder takes f. Only learn (the
// services' affinity) may be left to ovs-ofctl.
func nativeOK(t testing.TB, f openapi.Flow) bool {
	t.Helper()
	ports := map[string]int{}
	for _, m := range regexp.MustCompile(`\$\{port:([^}]+)\}`).FindAllStringSubmatch(f.Match+f.Actions, -1) {
		ports[m[1]] = 1
	}
	line, key, err := renderFlow(&f, resolver{ofports: ports}, 3, groupsNamed(f.Actions))
	if err != nil {
		t.Fatalf("render %+v: %v", f, err)
	}
	_, err = encodeChange(nil, []string{key}, map[string]string{key: line})
	var u *unsupportedError
	if errors.As(err, &u) {
		if !strings.Contains(f.Actions, "learn(") {
			t.Fatalf("the native encoder declines a flow that is not a service's: %+v: %v", f, err)
		}
		return false
	}
	return true
}

// groupsNamed is a group table with the groups actions send to.
func groupsNamed(actions string) groupTable {
	gt := groupTable{}
	for _, m := range groupRef.FindAllStringSubmatch(actions, -1) {
		var id uint32
		fmt.Sscan(m[1], &id)
		gt[id] = "type=select"
	}
	return gt
}

func renderAll(t testing.TB, flows []openapi.Flow, ports map[string]int) ([]string, map[string]string) {
	t.Helper()
	var keys []string
	lines := map[string]string{}
	for i := range flows {
		line, key, err := renderFlow(&flows[i], resolver{ofports: ports}, 3, groupsNamed(flows[i].Actions))
		if err != nil {
			t.Fatalf("render %+v: %v", flows[i], err)
		}
		if _, dup := lines[key]; !dup {
			keys = append(keys, key)
		}
		lines[key] = line
	}
	return keys, lines
}

// TestEncodeLikeOVSOFCtl encodes every golden flow and has ovs-ofctl print
// the flow_mods (ofp-parse); ovs-ofctl must print the same as for the flow
// text it parses itself (parse-flows, OpenFlow 1.5): match, cookie, flags,
// actions and instructions alike.
func TestEncodeLikeOVSOFCtl(t *testing.T) {
	if _, err := exec.LookPath("ovs-ofctl"); err != nil {
		t.Skip("needs ovs-ofctl")
	}
	flows, ports := goldenFlows(t)
	keys, lines := renderAll(t, flows, ports)
	mods, err := encodeChange(nil, keys, lines)
	if err != nil {
		t.Fatalf("the compiler's vocabulary must encode: %v", err)
	}
	dir := t.TempDir()
	var bin []byte
	var text strings.Builder
	for i, m := range mods {
		bin = append(bin, ofMessage(ofVersion15, m.typ, uint32(i+1), m.body)...)
		text.WriteString(lines[keys[i]] + "\n")
	}
	binFile, textFile := filepath.Join(dir, "mods.bin"), filepath.Join(dir, "flows.txt")
	os.WriteFile(binFile, bin, 0o600)
	os.WriteFile(textFile, []byte(text.String()), 0o600)
	got := ofctlLines(t, "ofp-parse", binFile)
	want := ofctlLines(t, "-O", "OpenFlow15", "parse-flows", textFile)
	if len(got) != len(mods) || len(want) != len(mods) {
		t.Fatalf("%d flows: ofp-parse printed %d flow_mods, parse-flows %d", len(mods), len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Errorf("flow %s\nencoded:   %s\novs-ofctl: %s", lines[keys[i]], got[i], want[i])
		}
	}
	t.Logf("%d flows encoded as ovs-ofctl encodes them", len(mods))
}

// ofctlLines runs ovs-ofctl and returns the flow_mods it printed, without
// their xid.
func ofctlLines(t *testing.T, args ...string) []string {
	t.Helper()
	out, err := exec.Command("ovs-ofctl", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("ovs-ofctl %v: %v\n%s", args, err, out)
	}
	xid := regexp.MustCompile(`\(xid=0x[0-9a-f]+\): `)
	var ls []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "OFPT_FLOW_MOD") {
			ls = append(ls, xid.ReplaceAllString(l, ""))
		}
	}
	return ls
}

// TestEncodeRefusesUnknown: syntax the encoder does not know is declined
// (the change then goes through ovs-ofctl), never encoded approximately.
func TestEncodeRefusesUnknown(t *testing.T) {
	for _, c := range []struct{ match, actions string }{
		{"ct_state=trk", "drop"},       // flags without +/-
		{"ct_state=0x20/0x20", "drop"}, // numeric
		{"ct_state=+trk+trk", "drop"},  // a flag twice
		{"ct_state=+trk+foo", "drop"},  // unknown flag
		{"ct_state=+", "drop"},         // no flag
		{"ct_state=+trk,ct_state=+new", "drop"},
		{"ct_label=1", "drop"},      // not in the vocabulary
		{"ct_zone=0x1/0x1", "drop"}, // not maskable
		{"ct_mark=0x1/0x1", "drop"},
		{"conj_id=1/1", "drop"},         // not maskable
		{"conj_id=0x100000000", "drop"}, // too wide
		{"ip", "ct(nat(src=10.0.0.1-10.0.0.9))"},
		{"ip", "ct(commit,nat(dst=10.0.0.1:80-90))"},
		{"ip", "ct(commit,nat(src=10.0.0.1,persistent))"},
		{"ip", "ct(nat,nat)"},
		{"ip", "ct(commit,force)"},
		{"ip", "ct(commit,exec(set_field:1->ct_mark))"},
		{"ip", "ct(alg=ftp)"},
		{"ip", "ct(table=0x3)"}, // ovs-ofctl reads tables in decimal
		{"ip", "ct(table=255)"},
		{"ip", "ct(table=3,table=4)"},
		{"ip", "ct(commit,commit)"},
		{"ip", "ct(zone=70000)"},
		{"ip", "ct(zone=010)"},
		{"ip", "ct(zone=NXM_NX_REG0[0..7])"}, // zones are 16 bits
		{"ip", "ct(zone=NXM_NX_CT_ZONE[])"},
		{"ip", "ct(commit=1)"},
		{"ip", "ct()"},
		{"ip", "ct"},
		{"ip", "conjunction(1,1/1)"},
		{"ip", "conjunction(1,0/2)"},
		{"ip", "conjunction(1,3/2)"},
		{"ip", "conjunction(1,1/65)"},
		{"ip", "conjunction(1,01/2)"},
		{"ip", "conjunction(0x100000000,1/2)"},
		{"ip", "conjunction(1,1/2,3)"},
		{"ip", "controller"},
		{"ip", "controller(reason=no_match)"}, // no userdata or meter
		{"ip", "controller(userdata=)"},
		{"ip", "controller(userdata=0)"},
		{"ip", "controller(userdata=zz)"},
		{"ip", "controller(userdata=01..02)"},
		{"ip", "controller(meter_id=0)"},
		{"ip", "controller(meter_id=0x100000000)"},
		{"ip", "controller(max_len=100,userdata=01)"},
		{"ip", "controller(id=1,userdata=01)"},
		{"ip", "controller(pause,userdata=01)"},
		{"ip", "controller(userdata=01,userdata=02)"},
		{"ip", "controller(reason=group,userdata=01)"},
		{"ip", "controller:100"},
		{"ip", "move:ct_state[0..7]->NXM_NX_REG1[0..7]"},
		{"ip", "move:conj_id[]->NXM_NX_REG1[]"},
		{"sctp,tcp_dst=80", "drop"}, // field of another protocol
		{"ip", "learn(table=1,NXM_OF_ETH_DST[]=NXM_OF_ETH_SRC[])"},
		{"ipv6,ipv6_src=::1", "drop"},
		{"in_port=LOCAL", "drop"},
		{"in_port=0", "drop"},
		{"arp,nw_src=10.0.0.1", "drop"},       // nw_src means arp_spa for ARP
		{"nw_src=10.0.0.1", "drop"},           // no prerequisite
		{"icmp,tp_dst=80", "drop"},            // tp_* needs tcp or udp
		{"ip,arp", "drop"},                    // conflicting protocols
		{"reg0=1,reg0=2", "drop"},             // repeated field
		{"reg0=0x1/0", "drop"},                // all-zero mask
		{"reg0=010", "drop"},                  // octal?
		{"reg0=0x100000000", "drop"},          // too wide
		{"arp,arp_op=256", "drop"},            // arp_op is 8 bits in OVS
		{"in_port=1/1", "drop"},               // in_port is not maskable
		{"dl_dst=0a:58:0a:01:00", "drop"},     // short MAC
		{"vlan_tci=0x1000/0x1000", "drop"},    // unknown field
		{"reg0=1", "goto_table:3,output:1"},   // goto_table not last
		{"reg0=1", "output:LOCAL"},            // named port
		{"reg0=1", "output:65280"},            // not a physical port
		{"reg0=1", "set_field:0x3/0x1->reg1"}, // value outside mask
		{"reg0=1", "set_field:1->in_port"},    // not writable here
		{"reg0=1", "set_field:1->dl_type"},    // not writable
		{"reg0=1", "move:NXM_NX_REG0[0..3]->NXM_NX_REG1[0..4]"},
		{"reg0=1", "move:NXM_OF_IN_PORT[]->NXM_NX_REG1[0..15]"},
		{"reg0=1", "load:0x10->NXM_NX_REG1[0..3]"}, // wider than its field
		{"reg0=1", "resubmit(1,2)"},
		{"reg0=1", "mod_vlan_vid:5"},
		{"reg0=1", "note:00"},
		{"reg0=1", "5"},
	} {
		f := openapi.Flow{Table: 1, Priority: 10, Match: c.match, Actions: c.actions}
		line, key, err := renderFlow(&f, resolver{}, 0, groupTable{1: "group_id=1,type=all"})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := encodeChange(nil, []string{key}, map[string]string{key: line}); !isUnsupported(err) {
			t.Errorf("%s actions=%s: want unsupported, got %v", c.match, c.actions, err)
		}
		if strings.Contains(c.actions, "goto") || strings.Contains(c.actions, "->") || c.actions != "drop" {
			continue
		}
		if _, err := encodeChange([]string{key}, nil, nil); !isUnsupported(err) {
			t.Errorf("delete %s: want unsupported, got %v", c.match, err)
		}
	}
}
