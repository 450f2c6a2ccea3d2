-- +goose Up
-- External access (docs/external-api.md).
--
-- Containers publish ports on their host's address: an array of
-- {hostPort, port, protocol, hostIP?} (protocol always stored, upper case),
-- SQL NULL when none. The GIN index serves the conflict checks, which look
-- up one {hostPort, protocol} at a time by containment.
ALTER TABLE containers
    ADD COLUMN publish jsonb CHECK (publish IS NULL OR (jsonb_typeof(publish) = 'array' AND jsonb_array_length(publish) > 0));
CREATE INDEX containers_publish_idx ON containers USING gin (publish jsonb_path_ops) WHERE publish IS NOT NULL;

-- Services' node ports live in their ports (ports[i].nodePort); the index
-- serves the same containment lookups. The external traffic policy applies
-- to all of a service's node ports.
ALTER TABLE services
    ADD COLUMN external_traffic_policy text NOT NULL DEFAULT 'Cluster' CHECK (external_traffic_policy IN ('Cluster', 'Local'));
CREATE INDEX services_ports_idx ON services USING gin (ports jsonb_path_ops);

-- Networks' egress: SNAT on by default; an optional egress IP, one per
-- network at most and never shared.
ALTER TABLE networks
    ADD COLUMN egress_snat boolean NOT NULL DEFAULT true,
    ADD COLUMN egress_ip inet CHECK (egress_ip IS NULL OR (family(egress_ip) = 4 AND masklen(egress_ip) = 32)),
    ADD CONSTRAINT networks_egress_ip_key UNIQUE (egress_ip);

-- Host readiness is stored, not computed on read: the controllers flip it
-- (a sweep sets it false past the heartbeat timeout, a report sets it true)
-- in ordinary writes with a host event, so every replica's compiler sees
-- the flip in revision order. Every host starts NotReady; its agent's next
-- report makes it Ready.
ALTER TABLE hosts ADD COLUMN ready boolean NOT NULL DEFAULT false;

-- +goose Down
ALTER TABLE hosts DROP COLUMN ready;
ALTER TABLE networks DROP CONSTRAINT networks_egress_ip_key, DROP COLUMN egress_ip, DROP COLUMN egress_snat;
DROP INDEX services_ports_idx;
ALTER TABLE services DROP COLUMN external_traffic_policy;
DROP INDEX containers_publish_idx;
ALTER TABLE containers DROP COLUMN publish;
