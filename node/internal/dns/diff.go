package dns

import (
	"slices"
	"strings"

	"github.com/switchyard/switchyard/openapi"
)

// recordDiff is what changed from one program's records to the next.
type recordDiff struct {
	// removed are the old records the new ones do not have, added the
	// new records the old ones do not have, as multisets (a record twice
	// counts twice). They point into old and new.
	removed, added []*openapi.DNSRecord
	// kept is a copy of new, made only when something changed, the
	// ports copied too (buf's storage is reused); sorted says whether new
	// is sorted by key.
	kept   []openapi.DNSRecord
	sorted bool
}

// diff compares old (our copy of the last records) with new. When both
// are sorted by DNSRecord.Key (the controller's programs are; oldSorted
// says whether old was) it merges them in one pass, copying nothing until
// the first difference; otherwise it matches them through a map.
func diff(old, new, buf []openapi.DNSRecord, oldSorted bool) recordDiff {
	if oldSorted {
		if d, ok := mergeDiff(old, new, buf); ok {
			return d
		}
	}
	return mapDiff(old, new)
}

// mergeDiff is diff of sorted old and new; false if new is not sorted.
func mergeDiff(old, new, buf []openapi.DNSRecord) (recordDiff, bool) {
	d := recordDiff{sorted: true}
	i := 0
	copying, prevSame := false, false
	for j := range new {
		if i < len(old) && sameRecord(&old[i], &new[j]) {
			// The same record: new[j] is in order if new[j-1] was
			// old[i-1] (old is sorted).
			if j > 0 && !prevSame && compareKeys(&new[j-1], &new[j]) > 0 {
				return recordDiff{}, false
			}
			if copying {
				d.kept = append(d.kept, old[i]) // its ports are ours already
			}
			i, prevSame = i+1, true
			continue
		}
		if j > 0 && compareKeys(&new[j-1], &new[j]) > 0 {
			return recordDiff{}, false
		}
		if !copying { // the first difference: new[:j] is old[:j]
			d.kept, copying = append(buf[:0], old[:j]...), true
		}
		prevSame = false
		c := 1
		for ; i < len(old); i++ {
			if c = compareKeys(&old[i], &new[j]); c >= 0 {
				break
			}
			d.removed = append(d.removed, &old[i])
		}
		if c == 0 && sameRecord(&old[i], &new[j]) { // after removed ones
			d.kept = append(d.kept, old[i])
			i, prevSame = i+1, true
			continue
		}
		if c == 0 { // the same key, another address or ports
			d.removed = append(d.removed, &old[i])
			i++
		}
		d.added = append(d.added, &new[j])
		d.kept = append(d.kept, new[j])
		d.kept[len(d.kept)-1].Ports = slices.Clone(new[j].Ports)
	}
	for ; i < len(old); i++ {
		d.removed = append(d.removed, &old[i])
	}
	if !copying && len(d.removed) > 0 { // only removed at the end
		d.kept = append(buf[:0], old[:len(new)]...)
	}
	return d, true
}

// recordKey is DNSRecord.Key as a map key, built without allocating.
type recordKey struct{ network, kind, name string }

// mapDiff is diff of old and new in any order.
func mapDiff(old, new []openapi.DNSRecord) recordDiff {
	var d recordDiff
	first := make(map[recordKey]*openapi.DNSRecord, len(old))
	more := map[recordKey][]*openapi.DNSRecord{} // a key's other records (twice in old)
	for i := range old {
		k := recordKey{old[i].Network, old[i].Kind, old[i].Name}
		if _, ok := first[k]; ok {
			more[k] = append(more[k], &old[i])
		} else {
			first[k] = &old[i]
		}
	}
	for j := range new {
		r := &new[j]
		k := recordKey{r.Network, r.Kind, r.Name}
		if o, ok := first[k]; ok && sameRecord(o, r) {
			delete(first, k)
			continue
		}
		same := more[k]
		if n := slices.IndexFunc(same, func(o *openapi.DNSRecord) bool { return sameRecord(o, r) }); n >= 0 {
			more[k] = slices.Delete(same, n, n+1)
			continue
		}
		d.added = append(d.added, r)
	}
	for _, r := range first {
		d.removed = append(d.removed, r)
	}
	for _, rs := range more {
		d.removed = append(d.removed, rs...)
	}
	if len(d.removed) > 0 || len(d.added) > 0 {
		d.kept = cloneRecords(new)
	}
	d.sorted = isSorted(new)
	return d
}

// isSorted reports whether records are sorted by DNSRecord.Key.
func isSorted(records []openapi.DNSRecord) bool {
	for i := 1; i < len(records); i++ {
		if compareKeys(&records[i-1], &records[i]) > 0 {
			return false
		}
	}
	return true
}

// compareKeys compares x.Key() and y.Key(), building them only when the
// networks or kinds differ (once per network and kind in a sorted list).
func compareKeys(x, y *openapi.DNSRecord) int {
	if x.Network == y.Network && x.Kind == y.Kind {
		return strings.Compare(x.Name, y.Name)
	}
	return strings.Compare(x.Key(), y.Key())
}

// sameRecord reports whether x and y are the same record.
func sameRecord(x, y *openapi.DNSRecord) bool {
	return x.Network == y.Network && x.VNI == y.VNI && x.Kind == y.Kind && x.Name == y.Name && x.IP == y.IP &&
		slices.Equal(x.Ports, y.Ports)
}

// cloneRecords copies records, their ports too.
func cloneRecords(records []openapi.DNSRecord) []openapi.DNSRecord {
	out := slices.Clone(records)
	for i := range out {
		out[i].Ports = slices.Clone(out[i].Ports)
	}
	return out
}
