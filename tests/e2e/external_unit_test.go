package e2e

import (
	"slices"
	"testing"
)

// nftLines finds ports and addresses as whole words only.
func TestNftLines(t *testing.T) {
	table := `table ip switchyard {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		tcp dport 18093 dnat to 10.62.0.2:90
		udp dport 180930 dnat to 10.62.0.20:90
		ip saddr 10.62.0.0/24 masquerade
	}
}`
	for _, tc := range []struct {
		terms []string
		want  []string
	}{
		{[]string{"18093"}, []string{"tcp dport 18093 dnat to 10.62.0.2:90"}},
		{[]string{"10.62.0.2"}, []string{"tcp dport 18093 dnat to 10.62.0.2:90"}},
		{[]string{"10.62.0.20"}, []string{"udp dport 180930 dnat to 10.62.0.20:90"}},
		{[]string{"10.62.0.0/24"}, []string{"ip saddr 10.62.0.0/24 masquerade"}},
		{[]string{"8093", "10.62.0.3", "0.62.0.2"}, nil},
	} {
		if got := nftLines(table, tc.terms...); !slices.Equal(got, tc.want) {
			t.Errorf("nftLines(%v) = %q, want %q", tc.terms, got, tc.want)
		}
	}
}
