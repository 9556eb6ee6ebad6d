-- Herald's own contact store: the CRM `update_crm_record` writes when a tenant has no external CRM.
-- `contacts` holds each contact's current properties; `writes` one row per action, written in the
-- same transaction as the change it made, so an action is applied once and can be asked about.
CREATE TABLE contacts (
    tenant text NOT NULL,
    contact_id text NOT NULL,
    properties jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, contact_id)
);

CREATE TABLE writes (
    action_id text PRIMARY KEY,
    tenant text NOT NULL,
    contact_id text NOT NULL,
    properties jsonb NOT NULL,
    written_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX writes_contact ON writes (tenant, contact_id);
