-- +goose Up
-- The version the host's agent reported when it last registered (empty:
-- an agent that does not say, or a host created through the API).
ALTER TABLE hosts ADD COLUMN agent_version text NOT NULL DEFAULT '' CHECK (length(agent_version) <= 128);

-- +goose Down
ALTER TABLE hosts DROP COLUMN agent_version;
