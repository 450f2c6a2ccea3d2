-- +goose Up
-- Catch-up reads walk the event log in (revision, seq) order from a revision
-- on; this index serves them without scanning history or sorting, and
-- replaces the index on revision alone.
CREATE INDEX events_revision_seq_idx ON events (revision, seq);
DROP INDEX events_revision_idx;

-- The event log is pruned (see SWITCHYARD_EVENT_RETENTION): every event with
-- a revision up to pruned_through may be gone. A reader asking for the events
-- after an older revision is told so instead of getting a silent gap.
CREATE TABLE event_horizon (
    one            boolean PRIMARY KEY DEFAULT true CHECK (one),
    pruned_through bigint NOT NULL DEFAULT 0 CHECK (pruned_through >= 0)
);
INSERT INTO event_horizon DEFAULT VALUES;

-- +goose Down
DROP TABLE event_horizon;
CREATE INDEX events_revision_idx ON events (revision);
DROP INDEX events_revision_seq_idx;
