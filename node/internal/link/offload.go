package link

import (
	"fmt"
	"strings"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netns"
)

// ethtoolIn opens an ethtool control socket inside ns: ethtool ioctls act on
// the namespace the socket was created in.
func ethtoolIn(ns netns.NsHandle) (*ethtool.Ethtool, error) {
	var et *ethtool.Ethtool
	err := inThread(ns, func() error {
		var err error
		et, err = ethtool.NewEthtool()
		return err
	})
	return et, err
}

// txChecksumOn returns the tx checksum features of iface that are enabled.
// `ethtool -K IFACE tx off` turns exactly these off.
func txChecksumOn(et *ethtool.Ethtool, iface string) ([]string, error) {
	features, err := et.Features(iface)
	if err != nil {
		return nil, fmt.Errorf("ethtool features of %s: %w", iface, err)
	}
	var on []string
	for name, enabled := range features {
		if enabled && strings.HasPrefix(name, "tx-checksum") {
			on = append(on, name)
		}
	}
	return on, nil
}

// txChecksumOff turns off the given tx checksum features of iface.
func txChecksumOff(et *ethtool.Ethtool, iface string, features []string) error {
	change := make(map[string]bool, len(features))
	for _, f := range features {
		change[f] = false
	}
	if err := et.Change(iface, change); err != nil {
		return fmt.Errorf("ethtool -K %s tx off: %w", iface, err)
	}
	return nil
}

// ensureTxOff checks (and with fix, turns off) tx checksum offload of iface,
// and returns what it found wrong.
func ensureTxOff(et *ethtool.Ethtool, iface string, fix bool) (string, error) {
	on, err := txChecksumOn(et, iface)
	if err != nil || len(on) == 0 {
		return "", err
	}
	diff := fmt.Sprintf("%s: tx checksum offload on (%s)", iface, strings.Join(on, ","))
	if fix {
		return diff, txChecksumOff(et, iface, on)
	}
	return diff, nil
}
