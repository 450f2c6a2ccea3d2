package store

import (
	"net/netip"
	"strings"

	"github.com/jackc/pgx/v5"
)

// IPAM blocks (table ipam_blocks, migration 00009): a network's addresses
// are handed to hosts in aligned blocks, like Calico's IPAM blocks, so that
// every other host routes all of a host's containers of a block with one
// flow (the compiler reads Container.IPBlock). The invariant the routes
// depend on: a container's ip_block is B only while B is owned by the
// container's host. A block is owned from its claim until its host (which
// must have no containers left) or its network is deleted; a container
// whose address is not in a block of its host is "borrowed": ip_block is
// NULL and it is routed on its own.

// minBlockBits is the prefix length of a block of a network larger than one.
const minBlockBits = 26

// blockBits is the prefix length of the blocks of network p: /26, or the
// whole network when it is smaller.
func blockBits(p netip.Prefix) int { return max(minBlockBits, p.Bits()) }

// blockSize is the number of addresses of a block of network p.
func blockSize(p netip.Prefix) int64 { return int64(1) << (32 - blockBits(p)) }

// blockOf is the block of network p that holds address offset off, as
// Container.IPBlock shows it ("10.0.0.64/26").
func blockOf(p netip.Prefix, off int64) string {
	bs := blockSize(p)
	return netip.PrefixFrom(offsetAddr(p, off/bs*bs), blockBits(p)).String()
}

// What allocSQL found (the first number of its answer): an address in a
// block of the host, in a block it may claim, or one to borrow.
const (
	allocOwn    = 1
	allocClaim  = 2
	allocBorrow = 3
)

// claimStepSQL is one step of the search for a block to claim, from offset
// {from}: the first free interval [lo, hi] of the pool ($1) that ends at or
// after {from} (one probe of ipam_free's primary key), and k, the first
// block at or after the one of greatest(lo, {from}) that no host owns: that
// block itself, or the one after the run of owned blocks it starts (probes
// of ipam_blocks' primary key, as many as the run is long).
const claimStepSQL = `SELECT f.lo, f.hi,
		CASE WHEN NOT EXISTS (SELECT 1 FROM ipam_blocks WHERE network_id = $1::text::uuid AND idx = greatest(f.lo, {from}) / $3::bigint)
		THEN greatest(f.lo, {from}) / $3::bigint
		ELSE (SELECT b.idx + 1 FROM ipam_blocks b WHERE b.network_id = $1::text::uuid AND b.idx >= greatest(f.lo, {from}) / $3::bigint
		        AND NOT EXISTS (SELECT 1 FROM ipam_blocks o WHERE o.network_id = $1::text::uuid AND o.idx = b.idx + 1)
		      ORDER BY b.idx LIMIT 1) END AS k
		FROM (SELECT lo, hi FROM ipam_free WHERE pool = $1::text AND hi >= {from} ORDER BY hi LIMIT 1) f`

// allocSQL picks the address of a new container of network $1 (its id, also
// its pool's name) on host $2, with the network's blocks of $3 addresses and
// its cursor $4 (>= 1). It returns {step, offset}, from the first of these
// that has one (COALESCE evaluates no more than it needs):
//
//  1. the host's blocks, next fit: the first free offset at or after the
//     cursor in the blocks from the cursor's up, else from the host's lowest
//     block up to the cursor's; one ipam_free probe per block tried;
//  2. the lowest block nobody owns that has a free offset: walk the free
//     intervals, skipping at each step to the next unowned block (see
//     claimStepSQL), so the walk does not grow with the containers, only
//     with the blocks claimed (or used up without an owner) before it;
//  3. any free offset, borrowed (next fit, as before blocks).
//
// No row: the network is full. The plan must stay index probes (see
// TestBlockQueryShape).
var allocSQL = `SELECT coalesce(
	(SELECT ARRAY[1, f.off] FROM ipam_blocks b CROSS JOIN LATERAL (
	    SELECT greatest(lo, b.idx * $3::bigint, $4::bigint) AS off FROM ipam_free
	    WHERE pool = $1::text AND hi >= greatest(b.idx * $3::bigint, $4::bigint) ORDER BY hi LIMIT 1) f
	 WHERE b.network_id = $1::text::uuid AND b.host_id = $2::uuid AND b.idx >= $4::bigint / $3::bigint
	   AND f.off < (b.idx + 1) * $3::bigint
	 ORDER BY b.idx LIMIT 1),
	(SELECT ARRAY[1, f.off] FROM ipam_blocks b CROSS JOIN LATERAL (
	    SELECT greatest(lo, b.idx * $3::bigint) AS off FROM ipam_free
	    WHERE pool = $1::text AND hi >= b.idx * $3::bigint ORDER BY hi LIMIT 1) f
	 WHERE b.network_id = $1::text::uuid AND b.host_id = $2::uuid AND b.idx <= $4::bigint / $3::bigint
	   AND f.off < (b.idx + 1) * $3::bigint
	 ORDER BY b.idx LIMIT 1),
	(WITH RECURSIVE walk(lo, hi, k) AS (
	     SELECT x.lo, x.hi, x.k FROM (VALUES (0::bigint)) s(s) CROSS JOIN LATERAL (` +
	strings.ReplaceAll(claimStepSQL, "{from}", "s.s") + `) x
	   UNION ALL
	     SELECT x.lo, x.hi, x.k FROM walk w CROSS JOIN LATERAL (` +
	strings.ReplaceAll(claimStepSQL, "{from}", "(w.k * $3::bigint)") + `) x
	     WHERE w.k * $3::bigint > w.hi)
	 SELECT ARRAY[2, greatest(lo, k * $3::bigint)] FROM walk WHERE k * $3::bigint <= hi LIMIT 1),
	(SELECT ARRAY[3, greatest(lo, $4::bigint)] FROM ipam_free WHERE pool = $1::text AND hi >= $4::bigint ORDER BY hi LIMIT 1),
	(SELECT ARRAY[3, greatest(lo, 1)] FROM ipam_free WHERE pool = $1::text AND hi >= 1 ORDER BY hi LIMIT 1))`

// allocBlock picks the offset of a new container of n on its host, and
// the block it is in ("" when borrowed), claiming that block for the host
// when it was nobody's (queued: the network's row lock, held by the
// caller, serializes claims). ok is false when the network is full.
func allocBlock(tx *Tx, n netRow) (off int64, block string, ok bool, err error) {
	var got []int64
	err = tx.QueryRow(tx.ctx, allocSQL, n.id, *n.hostID, blockSize(n.cidr), max(n.cursor, 1)).Scan(&got)
	if err != nil || got == nil {
		return 0, "", false, err
	}
	step, off := got[0], got[1]
	if off < 1 || off > size(n.cidr)-2 {
		return 0, "", false, nil // never in the pool; a guard against a corrupt one
	}
	switch step {
	case allocClaim:
		tx.Queue(`INSERT INTO ipam_blocks (network_id, idx, host_id) VALUES ($1, $2, $3)`, n.id, off/blockSize(n.cidr), *n.hostID)
		fallthrough
	case allocOwn:
		block = blockOf(n.cidr, off)
	}
	return off, block, true, nil
}

// claimBlockSQL returns the block of address $2 of network $1 (by name)
// when host $3 owns it, claiming it for the host when nobody did; else an
// empty string (another host's block: the address is borrowed). $4 is
// minBlockBits.
const claimBlockSQL = `WITH b AS (
		SELECT id, network(set_masklen($2::inet, greatest($4::int, masklen(cidr))))::text AS block,
		       ($2::inet - cidr::inet) >> (32 - greatest($4::int, masklen(cidr))) AS idx
		FROM networks WHERE name = $1),
	claimed AS (
		INSERT INTO ipam_blocks (network_id, idx, host_id) SELECT id, idx, $3::uuid FROM b
		ON CONFLICT (network_id, idx) DO NOTHING RETURNING host_id)
	SELECT CASE WHEN coalesce((SELECT host_id FROM claimed),
	                          (SELECT o.host_id FROM ipam_blocks o JOIN b ON o.network_id = b.id AND o.idx = b.idx)) = $3::uuid
	       THEN b.block ELSE '' END
	FROM b`

// claimBlock returns the block of address ip of network (a name) when host
// (an id) owns it or has just claimed it, else "" (borrowed).
func claimBlock(tx *Tx, network, ip, host string) (string, error) {
	var block string
	err := tx.QueryRow(tx.ctx, claimBlockSQL, network, ip, host, minBlockBits).Scan(&block)
	if err == pgx.ErrNoRows {
		return "", nil
	}
	return block, err
}
