package ovs

import (
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
)

// The OVSDB models below name only the columns this package reads or writes
// (libovsdb maps a partial model and monitors only the listed columns).

// rootRow is the Open_vSwitch table's single row.
type rootRow struct {
	UUID        string            `ovsdb:"_uuid"`
	Bridges     []string          `ovsdb:"bridges"`
	OtherConfig map[string]string `ovsdb:"other_config"`
	ExternalIDs map[string]string `ovsdb:"external_ids"`
	// NextCfg and CurCfg: ovs-vswitchd sets cur_cfg to next_cfg once it
	// has applied the configuration (see releasePort).
	NextCfg int `ovsdb:"next_cfg"`
	CurCfg  int `ovsdb:"cur_cfg"`
}

type bridgeRow struct {
	UUID         string            `ovsdb:"_uuid"`
	Name         string            `ovsdb:"name"`
	Ports        []string          `ovsdb:"ports"`
	DatapathType string            `ovsdb:"datapath_type"`
	FailMode     *string           `ovsdb:"fail_mode"`
	Protocols    []string          `ovsdb:"protocols"`
	OtherConfig  map[string]string `ovsdb:"other_config"`
	ExternalIDs  map[string]string `ovsdb:"external_ids"`
}

type portRow struct {
	UUID        string            `ovsdb:"_uuid"`
	Name        string            `ovsdb:"name"`
	Interfaces  []string          `ovsdb:"interfaces"`
	ExternalIDs map[string]string `ovsdb:"external_ids"`
}

type ifaceRow struct {
	UUID        string            `ovsdb:"_uuid"`
	Name        string            `ovsdb:"name"`
	Type        string            `ovsdb:"type"`
	Options     map[string]string `ovsdb:"options"`
	ExternalIDs map[string]string `ovsdb:"external_ids"`
	OFPort      *int              `ovsdb:"ofport"`
	// OFPortRequest is the ofport the adapter asks for (see ofportRequest).
	OFPortRequest *int    `ovsdb:"ofport_request"`
	Error         *string `ovsdb:"error"`
	LinkState     *string `ovsdb:"link_state"`
}

func dbModel() (model.ClientDBModel, error) {
	return model.NewClientDBModel("Open_vSwitch", map[string]model.Model{
		"Open_vSwitch": &rootRow{},
		"Bridge":       &bridgeRow{},
		"Port":         &portRow{},
		"Interface":    &ifaceRow{},
	})
}

// monitorOpts monitors exactly the modelled columns (not, e.g., Interface
// statistics, which change all the time).
func monitorOpts() []client.MonitorOption {
	r, b, p, i := &rootRow{}, &bridgeRow{}, &portRow{}, &ifaceRow{}
	return []client.MonitorOption{
		client.WithTable(r, &r.Bridges, &r.OtherConfig, &r.ExternalIDs, &r.NextCfg, &r.CurCfg),
		client.WithTable(b, &b.Name, &b.Ports, &b.DatapathType, &b.FailMode, &b.Protocols, &b.OtherConfig, &b.ExternalIDs),
		client.WithTable(p, &p.Name, &p.Interfaces, &p.ExternalIDs),
		client.WithTable(i, &i.Name, &i.Type, &i.Options, &i.ExternalIDs, &i.OFPort, &i.OFPortRequest, &i.Error, &i.LinkState),
	}
}
