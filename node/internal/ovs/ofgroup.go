package ovs

import (
	"encoding/binary"
	"strings"
)

// The groups half of the encoder (see ofenc.go): the group specs the
// adapter renders ("group_id=N,type=select[,selection_method=dp_hash],
// bucket=bucket_id:I,weight:W,actions=A,...", the services' load
// balancing) to OpenFlow 1.5 group_mods (add, modify, delete), encoded as
// `ovs-ofctl bundle` encodes "group add|modify|delete ...": buckets with
// their bucket_id, a weight property each (select groups), the actions
// as in a flow's apply_actions, then the selection method as the NTR
// experimenter group property. Any other form (another group type,
// watch_port, a bucket without id or weight, fields=, another selection
// method or parameter) is declined with an *unsupportedError and the
// change goes through ovs-ofctl.

const (
	ofGroupMod          = 15
	ofpgcAdd            = 0
	ofpgcModify         = 1
	ofpgcDelete         = 2
	ofpgtSelect         = 1
	ofpgMax             = 0xffffff00 // OFPG_MAX: larger ids are reserved
	ofpgBucketMax       = 0xffffff00 // OFPG15_BUCKET_MAX
	ofpgBucketAll       = 0xffffffff // OFPG15_BUCKET_ALL: ovs-ofctl's command_bucket_id
	ofpgbptWeight       = 0          // OFPGBPT15_WEIGHT
	ofpgptExperimenter  = 0xffff     // OFPGPT15_EXPERIMENTER
	ntrVendorID         = 0x0000154d // Netronome
	ntrtSelectionMethod = 1
	ntrSelMethodLen     = 16
	ofatGroup           = 22
)

// groupAction is "group:N" (OFPAT_GROUP).
func groupAction(arg string) ([]byte, error) {
	id, ok := decimal(arg)
	if !ok || id > ofpgMax {
		return nil, unsupported("action group:%s", arg)
	}
	b := make([]byte, 8)
	binary.BigEndian.PutUint16(b[0:], ofatGroup)
	binary.BigEndian.PutUint16(b[2:], 8)
	binary.BigEndian.PutUint32(b[4:], uint32(id))
	return b, nil
}

// groupModHead is the fixed part of an OF1.5 group_mod after the header.
func groupModHead(command uint16, typ uint8, id uint32, buckets int) []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint16(b[0:], command)
	b[2] = typ
	binary.BigEndian.PutUint32(b[4:], id)
	binary.BigEndian.PutUint16(b[8:], uint16(buckets))
	binary.BigEndian.PutUint32(b[12:], ofpgBucketAll)
	return b
}

// encodeGroupDelete is the body of the group_mod for "group delete
// group_id=N".
func encodeGroupDelete(id uint32) ([]byte, error) {
	if id > ofpgMax {
		return nil, unsupported("group id %d", id)
	}
	return groupModHead(ofpgcDelete, 0, id, 0), nil
}

// encodeGroupSet is the body of the group_mod for "group add SPEC"
// (modify false) or "group modify SPEC", SPEC a groupTable entry.
func encodeGroupSet(modify bool, spec string) ([]byte, error) {
	rest, ok := strings.CutPrefix(spec, "group_id=")
	idText, rest, ok2 := strings.Cut(rest, ",")
	id, ok3 := decimal(idText)
	if !ok || !ok2 || !ok3 || id > ofpgMax {
		return nil, unsupported("group %q", spec)
	}
	rest, ok = strings.CutPrefix(rest, "type=select,")
	if !ok {
		return nil, unsupported("group type in %q", spec)
	}
	method := ""
	if r, ok := strings.CutPrefix(rest, "selection_method=dp_hash,"); ok {
		method, rest = "dp_hash", r
	}
	if !strings.HasPrefix(rest, "bucket=") {
		return nil, unsupported("group %q", spec)
	}
	var buckets []byte
	seen := map[uint64]bool{}
	items := splitActions(rest)
	for i := 0; i < len(items); {
		// bucket=bucket_id:I, weight:W, actions=A[, more actions]
		if i+2 >= len(items) {
			return nil, unsupported("bucket in %q", spec)
		}
		bid, ok := strings.CutPrefix(items[i], "bucket=bucket_id:")
		w, ok2 := strings.CutPrefix(items[i+1], "weight:")
		first, ok3 := strings.CutPrefix(items[i+2], "actions=")
		bucketID, ok4 := decimal(bid)
		weight, ok5 := decimal(w)
		if !ok || !ok2 || !ok3 || !ok4 || !ok5 || bucketID > ofpgBucketMax || weight > 0xffff || seen[bucketID] {
			return nil, unsupported("bucket in %q", spec)
		}
		seen[bucketID] = true
		acts := []string{first}
		for i += 3; i < len(items) && !strings.HasPrefix(items[i], "bucket="); i++ {
			acts = append(acts, items[i])
		}
		var ab []byte
		for _, a := range acts {
			if a == "" {
				return nil, unsupported("bucket actions in %q", spec)
			}
			b, err := encodeAction(a)
			if err != nil {
				return nil, err
			}
			ab = append(ab, b...)
		}
		h := make([]byte, 8, 8+len(ab)+8)
		binary.BigEndian.PutUint16(h[2:], uint16(len(ab)))
		binary.BigEndian.PutUint32(h[4:], uint32(bucketID))
		// ofp15_group_bucket_prop_weight: weight and 2 bytes of pad.
		bk := appendProp(append(h, ab...), ofpgbptWeight, []byte{byte(weight >> 8), byte(weight), 0, 0})
		binary.BigEndian.PutUint16(bk[0:], uint16(len(bk)))
		buckets = append(buckets, bk...)
	}
	if len(buckets) > 0xffff-64 {
		return nil, unsupported("group %d: too many buckets", id)
	}
	cmd := uint16(ofpgcAdd)
	if modify {
		cmd = ofpgcModify
	}
	b := append(groupModHead(cmd, ofpgtSelect, uint32(id), len(buckets)), buckets...)
	if method != "" {
		// ntr_group_prop_selection_method: experimenter, exp_type, pad,
		// the method's name (16 bytes), its parameter (0), no fields.
		v := make([]byte, 4+4+4+ntrSelMethodLen+8)
		binary.BigEndian.PutUint32(v[0:], ntrVendorID)
		binary.BigEndian.PutUint32(v[4:], ntrtSelectionMethod)
		copy(v[12:], method)
		b = appendProp(b, ofpgptExperimenter, v)
	}
	return b, nil
}
