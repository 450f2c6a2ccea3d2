package cniserver

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// maxAddresses bounds the remembered addresses; the oldest go first.
const maxAddresses = 4096

// state is what the server keeps across agent restarts, in
// <StateDir>/state.json (written whole, atomically, on every change):
// the address and controller ID of each container it attached (so that a
// container the runtime restarts with the same ID gets its address back,
// and a DEL without the controller finds the interface to clean), and the
// deletes the controller has not heard of yet.
type state struct {
	path string
	mu   sync.Mutex
	data stateData
}

type stateData struct {
	// Addresses by "<network>/<runtime container id>".
	Addresses map[string]attachment `json:"addresses"`
	Pending   []pendingDelete       `json:"pending,omitempty"`
}

type attachment struct {
	IP string `json:"ip"`
	// ID is the container's ID at the controller.
	ID   string    `json:"id"`
	Seen time.Time `json:"seen"`
}

// pendingDelete is a DEL the controller missed.
type pendingDelete struct {
	Name, Network, RuntimeID string
	Since                    time.Time
}

func openState(dir string) (*state, error) {
	st := &state{data: stateData{Addresses: map[string]attachment{}}}
	if dir == "" {
		return st, nil // in memory only (tests)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cni state directory: %w", err)
	}
	st.path = filepath.Join(dir, "state.json")
	b, err := os.ReadFile(st.path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		return st, nil
	case err != nil:
		return nil, fmt.Errorf("cni state: %w", err)
	}
	if err := json.Unmarshal(b, &st.data); err != nil {
		return nil, fmt.Errorf("cni state %s is corrupt (move it away to start afresh): %w", st.path, err)
	}
	if st.data.Addresses == nil {
		st.data.Addresses = map[string]attachment{}
	}
	return st, nil
}

// save writes the state; the caller holds mu.
func (st *state) save() error {
	if st.path == "" {
		return nil
	}
	b, err := json.Marshal(st.data)
	if err != nil {
		return err
	}
	tmp := st.path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, st.path)
}

func key(network, runtimeID string) string { return network + "/" + runtimeID }

// address is the attachment last made for the runtime's container.
func (st *state) address(network, runtimeID string) (attachment, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	a, ok := st.data.Addresses[key(network, runtimeID)]
	return a, ok
}

// remember records an attachment and drops a pending delete of its name.
func (st *state) remember(network, runtimeID, name string, a attachment) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	a.Seen = time.Now().UTC()
	st.data.Addresses[key(network, runtimeID)] = a
	if len(st.data.Addresses) > maxAddresses {
		keys := make([]string, 0, len(st.data.Addresses))
		for k := range st.data.Addresses {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool { return st.data.Addresses[keys[i]].Seen.Before(st.data.Addresses[keys[j]].Seen) })
		for _, k := range keys[:len(keys)-maxAddresses] {
			delete(st.data.Addresses, k)
		}
	}
	st.dropLocked(network, name)
	return st.save()
}

// addPending records a delete the controller has to hear of.
func (st *state) addPending(p pendingDelete) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.dropLocked(p.Network, p.Name)
	p.Since = time.Now().UTC()
	st.data.Pending = append(st.data.Pending, p)
	return st.save()
}

// dropPending forgets the pending delete of a name.
func (st *state) dropPending(network, name string) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.dropLocked(network, name) {
		return nil
	}
	return st.save()
}

func (st *state) dropLocked(network, name string) bool {
	for i, p := range st.data.Pending {
		if p.Network == network && p.Name == name {
			st.data.Pending = append(st.data.Pending[:i], st.data.Pending[i+1:]...)
			return true
		}
	}
	return false
}

// pending lists the pending deletes.
func (st *state) pending() []pendingDelete {
	st.mu.Lock()
	defer st.mu.Unlock()
	return append([]pendingDelete(nil), st.data.Pending...)
}
