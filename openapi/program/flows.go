package program

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/switchyard/switchyard/openapi"
)

// CompareFlows is the order of a program's flows: table, priority
// descending, match, then cookie and actions so that the order is total.
func CompareFlows(a, b *openapi.Flow) int {
	if a.Table != b.Table {
		return cmp.Compare(a.Table, b.Table)
	}
	if a.Priority != b.Priority {
		return cmp.Compare(b.Priority, a.Priority)
	}
	if c := strings.Compare(a.Match, b.Match); c != 0 {
		return c
	}
	if a.Cookie != b.Cookie {
		return cmp.Compare(a.Cookie, b.Cookie)
	}
	return strings.Compare(a.Actions, b.Actions)
}

// compareFlow is CompareFlows for slices.BinarySearchFunc.
func compareFlow(a openapi.Flow, b *openapi.Flow) int { return CompareFlows(&a, b) }

func compareFlowValues(a, b openapi.Flow) int { return CompareFlows(&a, &b) }

// SortFlows sorts fs in place, by CompareFlows.
func SortFlows(fs []openapi.Flow) { slices.SortFunc(fs, compareFlowValues) }

// FlowsSorted tells whether fs is sorted by CompareFlows.
func FlowsSorted(fs []openapi.Flow) bool { return slices.IsSortedFunc(fs, compareFlowValues) }

// sortedFlows returns fs sorted, copying only if it is not sorted yet.
func sortedFlows(fs []openapi.Flow) []openapi.Flow {
	if FlowsSorted(fs) {
		return fs
	}
	fs = slices.Clone(fs)
	SortFlows(fs)
	return fs
}

// MergeFlows returns the sorted flows old without remove and with add, as a
// new slice (old is not modified; add and remove are sorted in place). old
// must be sorted by CompareFlows. It fails if a flow of remove is not in old
// (each removal takes away one copy). Positions are found by binary search
// and old is copied in segments: O(k log n) comparisons for k changes, one
// copy of old.
func MergeFlows(old []openapi.Flow, add, remove []*openapi.Flow) ([]openapi.Flow, error) {
	slices.SortFunc(add, CompareFlows)
	slices.SortFunc(remove, CompareFlows)
	delAt := make([]int, len(remove))
	from := 0
	for k, f := range remove {
		i, found := slices.BinarySearchFunc(old[from:], f, compareFlow)
		if !found {
			return nil, fmt.Errorf("flow to remove not in program: %s", AppendFlow(nil, f))
		}
		delAt[k] = from + i
		from += i + 1
	}
	out := make([]openapi.Flow, 0, len(old)+len(add)-len(remove))
	next, a, d := 0, 0, 0 // next: first flow of old not yet copied or skipped
	for a < len(add) || d < len(remove) {
		at := len(old) + 1
		if a < len(add) {
			at, _ = slices.BinarySearchFunc(old[next:], add[a], compareFlow)
			at += next
		}
		if d < len(remove) && delAt[d] < at {
			out = append(out, old[next:delAt[d]]...)
			next = delAt[d] + 1
			d++
			continue
		}
		out = append(out, old[next:at]...)
		out = append(out, *add[a])
		next = at
		a++
	}
	return append(out, old[next:]...), nil
}

// AppendFlow appends f in ovs-ofctl flow syntax, without a newline:
//
//	table=N, priority=P, cookie=0x..., MATCH actions=ACTIONS
//
// (no ", MATCH" when the match is empty).
func AppendFlow(b []byte, f *openapi.Flow) []byte {
	b = append(b, "table="...)
	b = strconv.AppendInt(b, int64(f.Table), 10)
	b = append(b, ", priority="...)
	b = strconv.AppendInt(b, int64(f.Priority), 10)
	b = append(b, ", cookie=0x"...)
	b = strconv.AppendUint(b, f.Cookie, 16)
	if f.Match != "" {
		b = append(b, ", "...)
		b = append(b, f.Match...)
	}
	b = append(b, " actions="...)
	return append(b, f.Actions...)
}
