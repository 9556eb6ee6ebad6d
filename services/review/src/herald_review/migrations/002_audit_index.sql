-- The audit index: one row per audit record (by its place on herald.audit.v1), for queries by tenant,
-- contact, action, rule and time, and for `herald explain`. Written by the sealer before its Kafka
-- transaction commits; a batch read again writes the same rows again (the key is the record's place).
CREATE TABLE audit_index (
    partition      integer     NOT NULL,
    "offset"       bigint      NOT NULL,
    message_id     text        NOT NULL,
    type           text        NOT NULL,
    topic          text        NOT NULL,
    tenant         text        NOT NULL,
    correlation_id text        NOT NULL,
    causation_id   text,
    action_id      text,
    contact_id     text,
    rule           text,
    occurred_at    timestamptz NOT NULL,
    body           jsonb,
    PRIMARY KEY (partition, "offset")
);
CREATE INDEX audit_by_action ON audit_index (action_id) WHERE action_id IS NOT NULL;
CREATE INDEX audit_by_correlation ON audit_index (correlation_id, occurred_at);
CREATE INDEX audit_by_tenant_time ON audit_index (tenant, occurred_at);
CREATE INDEX audit_by_contact ON audit_index (tenant, contact_id, occurred_at) WHERE contact_id IS NOT NULL;
CREATE INDEX audit_by_rule ON audit_index (tenant, rule, occurred_at) WHERE rule IS NOT NULL;
