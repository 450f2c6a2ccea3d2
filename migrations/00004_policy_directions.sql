-- +goose Up
-- A policy's ingress and egress keep "absent" (NULL: the policy says nothing
-- about that direction) apart from "present and empty" ('[]': isolate that
-- direction and allow nothing, a default deny). Existing rows keep their
-- value, '[]' included: they were written when absent meant [].
ALTER TABLE policies ALTER COLUMN ingress DROP NOT NULL, ALTER COLUMN ingress DROP DEFAULT;
ALTER TABLE policies ALTER COLUMN egress DROP NOT NULL, ALTER COLUMN egress DROP DEFAULT;
-- jsonb 'null' is never stored: absent is SQL NULL only.
ALTER TABLE policies ADD CONSTRAINT policies_ingress_array CHECK (ingress IS NULL OR jsonb_typeof(ingress) = 'array');
ALTER TABLE policies ADD CONSTRAINT policies_egress_array CHECK (egress IS NULL OR jsonb_typeof(egress) = 'array');

-- +goose Down
ALTER TABLE policies DROP CONSTRAINT policies_ingress_array, DROP CONSTRAINT policies_egress_array;
UPDATE policies SET ingress = '[]' WHERE ingress IS NULL;
UPDATE policies SET egress = '[]' WHERE egress IS NULL;
ALTER TABLE policies ALTER COLUMN ingress SET NOT NULL, ALTER COLUMN ingress SET DEFAULT '[]';
ALTER TABLE policies ALTER COLUMN egress SET NOT NULL, ALTER COLUMN egress SET DEFAULT '[]';
