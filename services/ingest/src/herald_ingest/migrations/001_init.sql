-- Herald's own contact store (the default CRM adapter) and the de-duplication ledger.
CREATE TABLE contacts (
    tenant text NOT NULL,
    contact_id text NOT NULL,
    email text,
    first_name text,
    last_name text,
    company text,
    job_title text,
    industry text,
    lifecycle_stage text,
    country text,
    timezone text,
    vip boolean NOT NULL DEFAULT false,
    deal_value_minor bigint NOT NULL DEFAULT 0,
    opted_out boolean NOT NULL DEFAULT false,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, contact_id)
);

-- (source, event id) seen once; committed only after the event's messages are on Kafka
CREATE TABLE seen_events (
    source text NOT NULL,
    event_id text NOT NULL,
    tenant text NOT NULL,
    seen_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (source, event_id)
);
