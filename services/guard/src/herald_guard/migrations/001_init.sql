-- The guard's decisions (one per action and stage) and its exact send counters.
CREATE TABLE decisions (
    action_id text NOT NULL,
    stage text NOT NULL CHECK (stage IN ('proposal', 'review')),
    tenant text NOT NULL,
    contact_id text NOT NULL,
    outcome text NOT NULL CHECK (outcome IN ('approve', 'block', 'escalate')),
    rule text,
    reason text,
    rules jsonb NOT NULL,
    action_hash text NOT NULL,
    approval jsonb,
    review_id text,
    decided_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (action_id, stage)
);
CREATE INDEX decisions_tenant_time ON decisions (tenant, decided_at);

-- one row per (tenant, counter, window): incremented only while below the cap, atomically
CREATE TABLE send_counters (
    tenant text NOT NULL,
    counter text NOT NULL,
    window_start timestamptz NOT NULL,
    count int NOT NULL,
    PRIMARY KEY (tenant, counter, window_start)
);
