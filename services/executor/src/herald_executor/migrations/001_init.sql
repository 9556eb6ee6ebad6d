-- The idempotency ledger: one row per action id, claimed before any side effect.
--   claimed   the side effect may be under way (a crash here leaves it in doubt: never retried blindly)
--   sent      the side effect happened; a redelivery only re-reports it
--   failed    the downstream refused it permanently
--   in_doubt  found claimed after a restart: surfaced, not repeated
CREATE TABLE ledger (
    action_id text PRIMARY KEY,
    tenant text NOT NULL,
    contact_id text NOT NULL,
    tool text NOT NULL,
    nonce text NOT NULL,
    source_partition int NOT NULL,
    source_offset bigint NOT NULL,
    state text NOT NULL CHECK (state IN ('claimed', 'sent', 'failed', 'in_doubt')),
    result jsonb,
    error text,
    claimed_at timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE INDEX ledger_state ON ledger (state) WHERE state IN ('claimed', 'in_doubt');

-- every approval nonce ever presented, so a replayed approval is recognised even for another action
CREATE TABLE seen_nonces (
    nonce text PRIMARY KEY,
    action_id text NOT NULL,
    source_partition int NOT NULL,
    source_offset bigint NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now()
);
