-- +goose Up
-- A policy may log the connections its rules decide (the agents report them).
ALTER TABLE policies ADD COLUMN log boolean NOT NULL DEFAULT false;

-- The counters of each host's counted policy flows, per cookie, from the
-- agents' reports. last_* are the switch's cumulative counters as last
-- reported; packets and bytes add up their increases over switch resets (a
-- smaller value than the last is a reset: the new value is all new). conn:
-- the cookie is the rule's ConnCookie, whose packets are new connections.
CREATE TABLE rule_counters (
    host_id      uuid NOT NULL REFERENCES hosts (id) ON DELETE CASCADE,
    cookie       bigint NOT NULL,
    policy_id    uuid NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    direction    text NOT NULL CHECK (direction IN ('ingress', 'egress')),
    rule         integer NOT NULL CHECK (rule >= 0),
    conn         boolean NOT NULL,
    last_packets bigint NOT NULL CHECK (last_packets >= 0),
    last_bytes   bigint NOT NULL CHECK (last_bytes >= 0),
    packets      bigint NOT NULL CHECK (packets >= 0),
    bytes        bigint NOT NULL CHECK (bytes >= 0),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (host_id, cookie)
);
CREATE INDEX rule_counters_policy_idx ON rule_counters (policy_id);

-- Connections decided by rules of policies with log, as the agents saw
-- them; pruned by age with the event log (SWITCHYARD_EVENT_RETENTION).
-- Container names are resolved from the addresses when the entry arrives.
CREATE TABLE policy_log (
    id            bigserial PRIMARY KEY,
    at            timestamptz NOT NULL,
    received_at   timestamptz NOT NULL DEFAULT now(),
    host          text NOT NULL,
    policy_id     uuid NOT NULL REFERENCES policies (id) ON DELETE CASCADE,
    direction     text NOT NULL CHECK (direction IN ('ingress', 'egress')),
    rule          integer NOT NULL CHECK (rule >= 0),
    verdict       text NOT NULL CHECK (verdict IN ('allow', 'deny')),
    protocol      text NOT NULL,
    src_ip        inet NOT NULL,
    src_port      integer NOT NULL DEFAULT 0,
    src_container text NOT NULL DEFAULT '',
    dst_ip        inet NOT NULL,
    dst_port      integer NOT NULL DEFAULT 0,
    dst_container text NOT NULL DEFAULT ''
);
CREATE INDEX policy_log_policy_idx ON policy_log (policy_id, id);
CREATE INDEX policy_log_received_idx ON policy_log (received_at);
-- Log entries name the containers of their addresses.
CREATE INDEX containers_network_ip_idx ON containers (network_id, ip);

-- +goose Down
DROP INDEX containers_network_ip_idx;
DROP TABLE policy_log, rule_counters;
ALTER TABLE policies DROP COLUMN log;
