package link

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/switchyard/switchyard/openapi"
)

// A managed sandbox gets a resolv.conf pointing at its network's resolver
// (the gateway, which OVS steers to the agent's DNS namespace), where
// `ip netns exec` finds it: <ResolvConfDir>/<sandbox netns name>/resolv.conf.
// The file starts with resolvConfMark; only such a file is ever replaced
// or deleted, and the directory only when that leaves it empty.

const resolvConfMark = "# written by switchyard: "

// resolvConf is the file p's sandbox gets.
func resolvConf(p openapi.ContainerPort) []byte {
	var b bytes.Buffer
	b.WriteString(resolvConfMark + alias(p)[len(AliasPrefix):] + "\n")
	b.WriteString("nameserver " + p.Gateway + "\n")
	if s := strings.Join(strings.Fields(p.DNSSearch), " "); s != "" {
		b.WriteString("search " + s + "\n")
	}
	b.WriteString("options ndots:2\n")
	return b.Bytes()
}

func (m *Manager) resolvConfPath(sandboxNetns string) string {
	return filepath.Join(m.opts.ResolvConfDir, sandboxNetns, "resolv.conf")
}

// ensureResolvConf writes p's resolv.conf (with fix) when it is missing or
// differs; a file there that the agent did not write is left alone and
// fails the port.
func (m *Manager) ensureResolvConf(p openapi.ContainerPort, fix bool) ([]string, error) {
	if m.opts.ResolvConfDir == "" || p.Netns != "" || p.Gateway == "" {
		return nil, nil
	}
	path := m.resolvConfPath(filepath.Base(m.SandboxPath(sandboxName(p))))
	want := resolvConf(p)
	have, err := os.ReadFile(path)
	switch {
	case err == nil && bytes.Equal(have, want):
		return nil, nil
	case err == nil && !bytes.HasPrefix(have, []byte(resolvConfMark)):
		return nil, fmt.Errorf("%s exists and was not written by switchyard; refusing to replace it", path)
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return nil, err
	}
	diffs := []string{"resolv.conf " + path}
	if !fix {
		return diffs, nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return diffs, err
	}
	tmp := path + ".switchyard"
	if err := os.WriteFile(tmp, want, 0o644); err != nil {
		return diffs, err
	}
	return diffs, os.Rename(tmp, path)
}

// removeResolvConf deletes the resolv.conf of a deleted sandbox, if the
// agent wrote it, and its directory if that leaves it empty.
func (m *Manager) removeResolvConf(sandboxNetns string) error {
	if m.opts.ResolvConfDir == "" {
		return nil
	}
	path := m.resolvConfPath(sandboxNetns)
	have, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil || !bytes.HasPrefix(have, []byte(resolvConfMark)) {
		return err
	}
	if err := os.Remove(path); err != nil {
		return err
	}
	_ = os.Remove(filepath.Dir(path)) // fails when not empty: then it stays
	return nil
}
