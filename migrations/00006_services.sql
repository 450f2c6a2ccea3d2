-- +goose Up
-- Services gain canary weights, session affinity, a health check and a
-- stable group id (the base of their OpenFlow group ids: groupId*32 + port
-- index). Absent weights and health check are SQL NULL, never jsonb 'null'.
ALTER TABLE services
    ADD COLUMN weights jsonb CHECK (weights IS NULL OR jsonb_typeof(weights) = 'array'),
    ADD COLUMN session_affinity text NOT NULL DEFAULT 'None' CHECK (session_affinity IN ('None', 'ClientIP')),
    ADD COLUMN affinity_timeout integer NOT NULL DEFAULT 0 CHECK (affinity_timeout BETWEEN 0 AND 86400),
    ADD COLUMN health_check jsonb CHECK (health_check IS NULL OR jsonb_typeof(health_check) = 'object'),
    ADD COLUMN group_id bigint;
-- Existing services get 1, 2, ... in creation order.
UPDATE services s SET group_id = g.n
FROM (SELECT id, row_number() OVER (ORDER BY created_at, id) AS n FROM services) g WHERE g.id = s.id;
ALTER TABLE services ALTER COLUMN group_id SET NOT NULL,
    ADD CONSTRAINT services_group_id_key UNIQUE (group_id),
    ADD CONSTRAINT services_group_id_range CHECK (group_id BETWEEN 1 AND 134217726);

-- The free group ids, in the free lists of 00002 (pool 'group'), kept in
-- step by the services trigger.
INSERT INTO ipam_free (pool, lo, hi)
SELECT 'group', prev + 1, v - 1 FROM (
    SELECT v, lag(v) OVER (ORDER BY v) AS prev FROM (
        SELECT group_id AS v FROM services UNION SELECT 0 UNION SELECT 134217727
    ) used
) gaps WHERE v - prev > 1;

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ipam_services() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP IN ('DELETE', 'UPDATE') THEN
        PERFORM ipam_give('vip', OLD.vip - '0.0.0.0'::inet);
        PERFORM ipam_give('group', OLD.group_id);
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        PERFORM ipam_take('vip', NEW.vip - '0.0.0.0'::inet);
        PERFORM ipam_take('group', NEW.group_id);
    END IF;
    RETURN NULL;
END $$;
-- +goose StatementEnd
DROP TRIGGER ipam_services ON services;
CREATE TRIGGER ipam_services AFTER INSERT OR DELETE OR UPDATE OF vip, group_id ON services
    FOR EACH ROW EXECUTE FUNCTION ipam_services();

-- The health verdicts the agents reported on services' backends. A backend
-- without a row is healthy (until a probe says otherwise).
CREATE TABLE endpoint_health (
    service_id   uuid NOT NULL REFERENCES services (id) ON DELETE CASCADE,
    container_id uuid NOT NULL REFERENCES containers (id) ON DELETE CASCADE,
    healthy      boolean NOT NULL,
    reason       text NOT NULL DEFAULT '',
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (service_id, container_id)
);
CREATE INDEX endpoint_health_container_idx ON endpoint_health (container_id);

-- Endpoint events are named "<service id>/<container id>".
ALTER TABLE events ALTER COLUMN object_id TYPE text;

-- +goose Down
DELETE FROM events WHERE kind = 'endpoint';
ALTER TABLE events ALTER COLUMN object_id TYPE uuid USING object_id::uuid;
DROP TABLE endpoint_health;
DROP TRIGGER ipam_services ON services;
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION ipam_services() RETURNS trigger LANGUAGE plpgsql AS $$
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
CREATE TRIGGER ipam_services AFTER INSERT OR DELETE OR UPDATE OF vip ON services
    FOR EACH ROW EXECUTE FUNCTION ipam_services();
DELETE FROM ipam_free WHERE pool = 'group';
ALTER TABLE services DROP COLUMN weights, DROP COLUMN session_affinity, DROP COLUMN affinity_timeout,
    DROP COLUMN health_check, DROP COLUMN group_id;
