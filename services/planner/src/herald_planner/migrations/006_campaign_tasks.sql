-- Campaign tasks: one row per task (a brief over a segment, not a contact), its state, the journal of its steps,
-- its audience with each contact's variant and action, and what it published — a task message read again (its
-- Kafka transaction aborted) publishes exactly that again; any other message for a task past `accepted` nothing.
CREATE TABLE tasks (
    task_id text PRIMARY KEY,
    tenant text NOT NULL,
    kind text NOT NULL CHECK (kind IN ('defined', 'open')),
    brief jsonb NOT NULL,
    state text NOT NULL CHECK (
        state IN ('accepted', 'retrieving', 'drafting', 'selecting', 'proposed', 'done', 'refused', 'failed')
    ),
    version integer NOT NULL DEFAULT 1,
    journal jsonb NOT NULL DEFAULT '[]',
    audience jsonb NOT NULL DEFAULT '[]',
    action_ids text[] NOT NULL DEFAULT '{}',
    reason text,
    requested_by text NOT NULL,
    correlation_id text NOT NULL,
    trigger_id text,
    outputs jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX tasks_by_tenant ON tasks (tenant, created_at);
