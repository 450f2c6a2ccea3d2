package ovs

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
)

// ofctl runs ovs-ofctl. It is the only place this package starts a process.
// go-openvswitch's OpenFlowService is no substitute: it has AddFlowBundle
// (a bundle of flow adds), but no replace-flows (a bundle that replaces the
// whole table, which a new generation needs), no group commands, and its
// flow parser rejects many actions the compiler emits; so flows stay text
// and ovs-ofctl parses them, except the flow adds and deletes of a change
// whose syntax the adapter's own encoder knows (ofenc.go, ofbundle.go).
type ofctl struct {
	bin    string
	rundir string
	tmp    string // private directory for flow files
	runs   atomic.Int64
	spares spares // see spare.go
}

// socket is the OpenFlow management socket of a bridge.
func (o *ofctl) socket(bridge string) string {
	return filepath.Join(o.rundir, bridge+".mgmt")
}

// run runs `ovs-ofctl -O OpenFlow15 --no-names <args...> unix:<socket>
// [file]` (no socket when bridge is ""). When file is non-nil its content is
// written to a private file whose path is appended to the arguments.
func (o *ofctl) run(ctx context.Context, bridge string, file []byte, args ...string) (string, error) {
	argv := append([]string{"-O", "OpenFlow15", "--no-names"}, args...)
	if bridge != "" {
		argv = append(argv, "unix:"+o.socket(bridge))
	}
	var path string
	if file != nil {
		f, err := os.CreateTemp(o.tmp, bridge+"-*.flows")
		if err != nil {
			return "", err
		}
		path = f.Name()
		defer os.Remove(path)
		_, err = f.Write(file)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return "", err
		}
		argv = append(argv, path)
	}
	o.runs.Add(1)
	cmd := exec.CommandContext(ctx, o.bin, argv...)
	cmd.Env = append(os.Environ(), "OVS_RUNDIR="+o.rundir)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if path != "" {
			msg = strings.ReplaceAll(msg, path, "<file>")
		}
		return stdout.String(), &ofctlError{args: args, msg: msg, err: err}
	}
	return stdout.String(), nil
}

type ofctlError struct {
	args []string
	msg  string
	err  error
}

func (e *ofctlError) Error() string {
	return fmt.Sprintf("ovs-ofctl %s: %v: %s", strings.Join(e.args, " "), e.err, e.msg)
}

var fileLine = regexp.MustCompile(`<file>:(\d+):`)

// badLine returns the 1-based line of the input file ovs-ofctl complained
// about, or 0.
func badLine(err error) int {
	e, ok := err.(*ofctlError)
	if !ok {
		return 0
	}
	m := fileLine.FindStringSubmatch(e.msg)
	if m == nil {
		return 0
	}
	n, _ := strconv.Atoi(m[1])
	return n
}
