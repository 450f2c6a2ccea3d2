-- +goose Up
-- IPAM blocks: a network's addresses are handed to hosts in aligned blocks
-- (/26, or the whole network when it is smaller), so every other host
-- routes all of a host's containers of a block with one flow. Block idx of
-- a network covers the address offsets [idx * size, (idx + 1) * size - 1].
-- A host claims a block when its own are full, and keeps it until it is
-- deleted (which needs it to have no containers left), or the network is.
CREATE TABLE ipam_blocks (
    network_id uuid   NOT NULL REFERENCES networks (id) ON DELETE CASCADE,
    idx        bigint NOT NULL CHECK (idx >= 0),
    host_id    uuid   NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    CONSTRAINT ipam_blocks_pkey PRIMARY KEY (network_id, idx)
);
-- A host's blocks of a network, in order: where its next address comes from.
CREATE INDEX ipam_blocks_host_idx ON ipam_blocks (network_id, host_id, idx);
-- A host's blocks in every network: what its deletion releases (the cascade).
CREATE INDEX ipam_blocks_host_only ON ipam_blocks (host_id);
-- Which hosts own blocks of which network, so the planner knows that a host
-- with many blocks elsewhere has few in this one: without it, it may read
-- the network's blocks by the primary key, filtering on the host.
CREATE STATISTICS ipam_blocks_owner (mcv, dependencies) ON network_id, host_id FROM ipam_blocks;

-- The block of the container's host its address comes from; NULL when the
-- address is borrowed (not in a block its host owns). Existing containers
-- stay borrowed: correct, only routed one by one.
ALTER TABLE containers ADD COLUMN ip_block cidr;

-- +goose Down
ALTER TABLE containers DROP COLUMN ip_block;
DROP TABLE ipam_blocks;
