-- API keys carry what they may do, for which business numbers, and how fast.
-- Keys made before keep what they could do: admin on every number, unlimited.
ALTER TABLE api_keys
    ALTER COLUMN name TYPE text COLLATE "C",
    ADD COLUMN scopes text[] NOT NULL DEFAULT '{admin}',          -- send, read, admin
    ADD COLUMN phone_number_ids text[] NOT NULL DEFAULT '{*}',    -- "*" is every number
    ADD COLUMN rate_per_second integer;                           -- NULL: unlimited
-- Revoking by name, listing by name.
CREATE INDEX api_keys_by_name ON api_keys (name, created_at, key_hash);

-- Every state-changing API call: who, what, when, the answer (never bodies).
CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,  -- newest first: the primary key backwards
    at_ms      bigint NOT NULL,
    key_name   text NOT NULL,
    method     text NOT NULL,
    route      text NOT NULL,
    target     text,
    status     integer NOT NULL,
    request_id text NOT NULL
);
