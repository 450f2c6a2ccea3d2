package store

import (
	"context"
	"net/netip"

	"github.com/jackc/pgx/v5"
)

// Allocation reads the free lists of table ipam_free (migration 00002): each
// pool's free values as disjoint intervals, kept in step with networks,
// containers and services by triggers. The first free value at or after any
// point is one probe of its primary key, so an allocation costs the same
// whatever values are in use, and however many: a VNI at the top of the
// range, a nearly full or fragmented address pool, a crowded service range.

// Pools that are not a network's addresses (those are named by its id).
const (
	poolVNI = "vni"
	poolVIP = "vip" // IPv4 addresses as numbers; the service range is applied per query
	// poolGroup are the service group ids (migration 00006).
	poolGroup = "group"
)

// firstFreeSQL returns the first free value of pool $1 that is >= $2, or no
// row: the interval with the smallest end at or after $2. Its plan must stay
// one probe of the primary key (see TestAllocationQueryShape).
const firstFreeSQL = `SELECT greatest(lo, $2::bigint) FROM ipam_free WHERE pool = $1 AND hi >= $2::bigint ORDER BY hi LIMIT 1`

// firstFree returns the first free value of pool that is in [from, to].
func firstFree(ctx context.Context, q Querier, pool string, from, to int64) (int64, bool, error) {
	var v int64
	err := q.QueryRow(ctx, firstFreeSQL, pool, from).Scan(&v)
	if err == pgx.ErrNoRows || (err == nil && v > to) {
		return 0, false, nil
	}
	return v, err == nil, err
}

// ipv4All is the prefix VIP pool numbers are offsets of.
var ipv4All = netip.MustParsePrefix("0.0.0.0/0")
