-- +goose Up
-- The global revision: bumped once in every write transaction. Holding its row
-- lock until commit makes commit order equal revision order.
CREATE TABLE sy_revision (
    id       boolean PRIMARY KEY DEFAULT true CHECK (id),
    revision bigint  NOT NULL
);
INSERT INTO sy_revision VALUES (true, 0);

CREATE TABLE hosts (
    id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name             text NOT NULL,
    address          inet NOT NULL,
    tunnel_type      text NOT NULL,
    labels           jsonb NOT NULL DEFAULT '{}',
    last_seen        timestamptz,
    applied_revision bigint NOT NULL DEFAULT 0,
    revision         bigint NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT hosts_name_key UNIQUE (name),
    CONSTRAINT hosts_address_key UNIQUE (address)
);

CREATE TABLE networks (
    id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name        text NOT NULL,
    cidr        cidr NOT NULL,
    gateway     inet NOT NULL,
    vni         integer NOT NULL,
    mtu         integer NOT NULL,
    labels      jsonb NOT NULL DEFAULT '{}',
    ipam_cursor bigint NOT NULL DEFAULT 0,
    revision    bigint NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT networks_name_key UNIQUE (name),
    CONSTRAINT networks_vni_key UNIQUE (vni),
    CONSTRAINT networks_cidr_overlap EXCLUDE USING gist (cidr inet_ops WITH &&)
);

CREATE TABLE containers (
    id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name          text NOT NULL,
    network_id    uuid NOT NULL REFERENCES networks (id),
    host_id       uuid NOT NULL REFERENCES hosts (id),
    labels        jsonb NOT NULL DEFAULT '{}',
    ip            inet NOT NULL,
    ip_offset     bigint NOT NULL,
    mac           macaddr NOT NULL,
    netns         text NOT NULL DEFAULT '',
    status        text NOT NULL DEFAULT 'pending',
    status_detail text NOT NULL DEFAULT '',
    revision      bigint NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT containers_name_key UNIQUE (network_id, name),
    CONSTRAINT containers_ip_key UNIQUE (network_id, ip_offset),
    CONSTRAINT containers_mac_key UNIQUE (mac)
);
CREATE INDEX containers_host_idx ON containers (host_id);
CREATE INDEX containers_name_idx ON containers (name, id);
CREATE INDEX containers_labels_idx ON containers USING gin (labels jsonb_path_ops);

CREATE TABLE services (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL,
    network_id uuid NOT NULL REFERENCES networks (id),
    vip        inet NOT NULL,
    ports      jsonb NOT NULL DEFAULT '[]',
    selector   text NOT NULL DEFAULT '',
    labels     jsonb NOT NULL DEFAULT '{}',
    revision   bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT services_name_key UNIQUE (network_id, name),
    CONSTRAINT services_vip_key UNIQUE (vip)
);

CREATE TABLE policies (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL,
    network_id uuid NOT NULL REFERENCES networks (id),
    selector   text NOT NULL DEFAULT '',
    priority   integer NOT NULL DEFAULT 1000,
    action     text NOT NULL DEFAULT 'allow',
    ingress    jsonb NOT NULL DEFAULT '[]',
    egress     jsonb NOT NULL DEFAULT '[]',
    labels     jsonb NOT NULL DEFAULT '{}',
    revision   bigint NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT policies_name_key UNIQUE (network_id, name)
);

-- Tokens store only a SHA-256 of the secret. A node token names its host by
-- name: the agent may register the host after the token exists.
CREATE TABLE tokens (
    id         uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    name       text NOT NULL,
    role       text NOT NULL,
    host       text NOT NULL DEFAULT '',
    hash       bytea NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    revoked_at timestamptz,
    CONSTRAINT tokens_name_key UNIQUE (name),
    CONSTRAINT tokens_hash_key UNIQUE (hash)
);

-- Every change, in revision order: the source of GET /api/v1/events.
CREATE TABLE events (
    seq       bigserial PRIMARY KEY,
    revision  bigint NOT NULL,
    kind      text NOT NULL,
    action    text NOT NULL,
    object_id uuid NOT NULL,
    name      text NOT NULL,
    network   text NOT NULL DEFAULT '',
    object    jsonb NOT NULL,
    at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_revision_idx ON events (revision);

CREATE TABLE audit (
    id          bigserial PRIMARY KEY,
    revision    bigint NOT NULL,
    actor       text NOT NULL,
    action      text NOT NULL,
    kind        text NOT NULL,
    object_id   text NOT NULL,
    object_name text NOT NULL,
    at          timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE audit, events, tokens, policies, services, containers, networks, hosts, sy_revision;
