-- +goose Up
-- Free lists for allocation: the free values of each pool as disjoint
-- intervals [lo, hi], keyed by their end. The first free value at or after
-- any point is one probe of that key, whatever values are in use and however
-- many, so an allocation never enumerates numbers. Allocations take from the
-- start of an interval, which changes lo only: an update that adds no index
-- entry (HOT, hence the fill factor), so churn leaves no trail of dead index
-- entries for the next probe to walk. Pools: 'vni' (1-16777215), 'vip' (the
-- whole IPv4 space as numbers; the configured service range is applied when
-- allocating, so changing it needs no migration), and one per network, named
-- by the network's id, of address offsets (without network, gateway and
-- broadcast). Triggers keep the lists in step with networks, containers and
-- services, whatever code writes them.
CREATE TABLE ipam_free (
    pool text   NOT NULL,
    lo   bigint NOT NULL,
    hi   bigint NOT NULL,
    CONSTRAINT ipam_free_pkey PRIMARY KEY (pool, hi),
    CHECK (lo <= hi)
) WITH (fillfactor = 50);

-- ipam_take marks v used in pool p: it splits or shrinks the interval
-- holding v. A value that is not free is left alone (the table's own unique
-- constraint refuses a duplicate).
-- +goose StatementBegin
CREATE FUNCTION ipam_take(p text, v bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    r ipam_free%ROWTYPE;
BEGIN
    SELECT * INTO r FROM ipam_free WHERE pool = p AND hi >= v ORDER BY hi LIMIT 1 FOR UPDATE;
    IF NOT FOUND OR r.lo > v THEN
        RETURN;
    END IF;
    IF r.lo = v AND r.hi = v THEN
        DELETE FROM ipam_free WHERE pool = p AND hi = v;
    ELSIF r.hi = v THEN
        UPDATE ipam_free SET hi = v - 1 WHERE pool = p AND hi = v;
    ELSE
        IF r.lo < v THEN
            INSERT INTO ipam_free VALUES (p, r.lo, v - 1);
        END IF;
        UPDATE ipam_free SET lo = v + 1 WHERE pool = p AND hi = r.hi;
    END IF;
END $$;
-- +goose StatementEnd

-- ipam_give marks v free in pool p, merging it with its neighbours.
-- +goose StatementBegin
CREATE FUNCTION ipam_give(p text, v bigint) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    above ipam_free%ROWTYPE;
    below bigint;
BEGIN
    SELECT * INTO above FROM ipam_free WHERE pool = p AND hi >= v ORDER BY hi LIMIT 1 FOR UPDATE;
    IF FOUND AND above.lo <= v THEN
        RETURN; -- free already
    END IF;
    SELECT lo INTO below FROM ipam_free WHERE pool = p AND hi = v - 1 FOR UPDATE;
    IF above.lo = v + 1 THEN
        IF below IS NOT NULL THEN
            DELETE FROM ipam_free WHERE pool = p AND hi = v - 1;
        END IF;
        UPDATE ipam_free SET lo = COALESCE(below, v) WHERE pool = p AND hi = above.hi;
    ELSIF below IS NOT NULL THEN
        UPDATE ipam_free SET hi = v WHERE pool = p AND hi = v - 1;
    ELSE
        INSERT INTO ipam_free VALUES (p, v, v);
    END IF;
END $$;
-- +goose StatementEnd

-- ipam_open creates the address pool of a network: every offset but the
-- network address, the gateway and the broadcast address.
-- +goose StatementBegin
CREATE FUNCTION ipam_open(id uuid, net cidr, gw inet) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ipam_free VALUES (id::text, 1, (1::bigint << (32 - masklen(net))) - 2);
    PERFORM ipam_take(id::text, gw - net::inet);
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION ipam_networks() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM ipam_give('vni', OLD.vni);
        IF TG_OP = 'DELETE' THEN
            DELETE FROM ipam_free WHERE pool = OLD.id::text;
        END IF;
    END IF;
    IF TG_OP = 'INSERT' THEN
        PERFORM ipam_open(NEW.id, NEW.cidr, NEW.gateway);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM ipam_take('vni', NEW.vni);
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION ipam_containers() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM ipam_give(OLD.network_id::text, OLD.ip_offset);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM ipam_take(NEW.network_id::text, NEW.ip_offset);
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION ipam_services() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM ipam_give('vip', OLD.vip - '0.0.0.0'::inet);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM ipam_take('vip', NEW.vip - '0.0.0.0'::inet);
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd

-- Existing data, in one pass: the gaps between the values in use, with the
-- pool's bounds (and a network's gateway) counted as in use.
INSERT INTO ipam_free (pool, lo, hi)
SELECT pool, prev + 1, v - 1 FROM (
    SELECT pool, v, lag(v) OVER (PARTITION BY pool ORDER BY v) AS prev FROM (
        SELECT 'vni' AS pool, vni::bigint AS v FROM networks
        UNION SELECT 'vni', 0 UNION SELECT 'vni', 16777216
        UNION SELECT 'vip', vip - '0.0.0.0'::inet FROM services
        UNION SELECT 'vip', -1 UNION SELECT 'vip', 4294967296
        UNION SELECT network_id::text, ip_offset FROM containers
        UNION SELECT id::text, 0 FROM networks
        UNION SELECT id::text, (1::bigint << (32 - masklen(cidr))) - 1 FROM networks
        UNION SELECT id::text, gateway - cidr::inet FROM networks
    ) used
) gaps WHERE v - prev > 1;

CREATE TRIGGER ipam_networks AFTER INSERT OR DELETE OR UPDATE OF vni ON networks
    FOR EACH ROW EXECUTE FUNCTION ipam_networks();
CREATE TRIGGER ipam_containers AFTER INSERT OR DELETE OR UPDATE OF network_id, ip_offset ON containers
    FOR EACH ROW EXECUTE FUNCTION ipam_containers();
CREATE TRIGGER ipam_services AFTER INSERT OR DELETE OR UPDATE OF vip ON services
    FOR EACH ROW EXECUTE FUNCTION ipam_services();

-- A service or policy is read by id or name (query.go: id = $2 OR name = $1);
-- their unique keys lead with the network, so without these that read
-- scanned the table, inside the writer, on every update and delete.
CREATE INDEX services_name_idx ON services (name, id);
CREATE INDEX policies_name_idx ON policies (name, id);

-- +goose Down
DROP INDEX services_name_idx, policies_name_idx;
DROP TRIGGER ipam_services ON services;
DROP TRIGGER ipam_containers ON containers;
DROP TRIGGER ipam_networks ON networks;
DROP FUNCTION ipam_services(), ipam_containers(), ipam_networks(), ipam_open(uuid, cidr, inet),
    ipam_give(text, bigint), ipam_take(text, bigint);
DROP TABLE ipam_free;
