-- The workflow engine. Runs change by compare-and-set (the version they were read at is in the UPDATE), every
-- step is journalled with what it published (a redelivered event publishes exactly that again, nothing new),
-- timers are leased rows, and what each contact did is kept for waits to check before they sleep.
ALTER TABLE workflow_runs ADD COLUMN version integer NOT NULL DEFAULT 1;
ALTER TABLE workflow_runs ADD COLUMN data jsonb NOT NULL DEFAULT '{}';
ALTER TABLE workflow_runs ADD COLUMN config jsonb NOT NULL DEFAULT '{}';
ALTER TABLE workflow_runs ADD COLUMN contact jsonb;
ALTER TABLE workflow_runs ADD COLUMN contact_domain text;
CREATE INDEX workflow_runs_contact ON workflow_runs (tenant, contact_id);
CREATE INDEX workflow_runs_domain ON workflow_runs (tenant, contact_domain) WHERE contact_domain IS NOT NULL;

CREATE TABLE run_steps (
    workflow_id text NOT NULL REFERENCES workflow_runs ON DELETE CASCADE,
    trigger_id text NOT NULL,
    seq integer NOT NULL,
    event_type text NOT NULL,
    from_state text NOT NULL,
    to_state text NOT NULL,
    note jsonb NOT NULL DEFAULT '{}',
    outputs jsonb NOT NULL DEFAULT '[]',
    at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (workflow_id, trigger_id)
);

CREATE TABLE run_actions (
    action_id text PRIMARY KEY,
    workflow_id text NOT NULL REFERENCES workflow_runs ON DELETE CASCADE
);
CREATE INDEX run_actions_run ON run_actions (workflow_id);

CREATE TABLE timers (
    timer_id text PRIMARY KEY,
    workflow_id text NOT NULL REFERENCES workflow_runs ON DELETE CASCADE,
    tenant text NOT NULL,
    contact_id text NOT NULL,
    workflow text NOT NULL,
    name text NOT NULL,
    due_at timestamptz NOT NULL,
    -- pending → fired (it moved its run) | spent (its run had moved on) | cancelled (the run left the wait)
    state text NOT NULL DEFAULT 'pending',
    correlation_id text NOT NULL,
    leased_until timestamptz,
    leases integer NOT NULL DEFAULT 0,  -- times it was taken to be published (more than 1: a publisher died)
    created_at timestamptz NOT NULL DEFAULT now(),
    fired_at timestamptz
);
CREATE INDEX timers_due ON timers (due_at) WHERE state = 'pending';
CREATE INDEX timers_run ON timers (workflow_id) WHERE state = 'pending';

CREATE TABLE contact_activity (
    tenant text NOT NULL,
    event_id text NOT NULL,
    contact_id text NOT NULL,
    domain text,
    type text NOT NULL,
    recorded_at timestamptz NOT NULL,
    facts jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (tenant, event_id)
);
CREATE INDEX contact_activity_contact ON contact_activity (tenant, contact_id, recorded_at);
CREATE INDEX contact_activity_domain ON contact_activity (tenant, domain, recorded_at) WHERE domain IS NOT NULL;

-- runs made before the engine: their action and their published messages move to the new tables
INSERT INTO run_actions (action_id, workflow_id)
    SELECT action_id, workflow_id FROM workflow_runs WHERE action_id IS NOT NULL ON CONFLICT DO NOTHING;
INSERT INTO run_steps (workflow_id, trigger_id, seq, event_type, from_state, to_state, outputs)
    SELECT workflow_id, trigger_id, 1, 'herald.contact.created.v1', '', 'proposed', outputs
    FROM workflow_runs WHERE trigger_id IS NOT NULL AND outputs IS NOT NULL;
-- a run left `started` published nothing and its event was never committed: it is read again and planned anew
DELETE FROM workflow_runs WHERE state = 'started' AND outputs IS NULL;
DROP INDEX IF EXISTS workflow_runs_action;
ALTER TABLE workflow_runs DROP COLUMN action_id, DROP COLUMN trigger_id, DROP COLUMN outputs;
