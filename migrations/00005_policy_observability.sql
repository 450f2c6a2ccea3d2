-- +goose Up
-- A policy may log the connections its rules decide (the agents report them).
ALTER TABLE policies ADD COLUMN log boolean NOT NULL DEFAULT false;

-- The counters of each host's counted policy flows, from the agents'
-- reports: one row per host (a heartbeat writes one row, not one per rule).
-- For cookies[i], counters[4i+1..4i+4] are the switch's cumulative packets
-- and bytes as last reported, then the packets and bytes added up over
-- switch resets (a smaller value than the last is a reset: the new value is
-- all new). Only cookies of current policy rules are kept.
CREATE TABLE rule_counters (
    host_id    uuid PRIMARY KEY REFERENCES hosts (id) ON DELETE CASCADE,
    cookies    bigint[] NOT NULL,
    counters   bigint[] NOT NULL CHECK (cardinality(counters) = 4 * cardinality(cookies)),
    updated_at timestamptz NOT NULL DEFAULT now()
);

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
