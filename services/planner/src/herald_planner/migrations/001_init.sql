-- Durable workflow runs: one per (tenant, contact, workflow); every transition appended to history.
CREATE TABLE workflow_runs (
    workflow_id text PRIMARY KEY,
    tenant text NOT NULL,
    contact_id text NOT NULL,
    workflow text NOT NULL,
    state text NOT NULL,
    action_id text,
    correlation_id text NOT NULL,
    history jsonb NOT NULL DEFAULT '[]',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (tenant, contact_id, workflow)
);
CREATE INDEX workflow_runs_action ON workflow_runs (action_id);
