-- Medium-term memory: what happened with each contact lately (emails sent, replies, meetings).
-- A row lives until expires_at; the sweeper then folds a contact's expired rows into one long-term
-- summary in Weaviate and deletes them. The id is the Kafka message's, so a redelivery adds nothing.
CREATE TABLE interactions (
    tenant         text        NOT NULL,
    interaction_id text        NOT NULL,
    contact_id     text        NOT NULL,
    kind           text        NOT NULL,
    text           text        NOT NULL,
    occurred_at    timestamptz NOT NULL,
    expires_at     timestamptz NOT NULL,
    PRIMARY KEY (tenant, interaction_id)
);
CREATE INDEX interactions_by_contact ON interactions (tenant, contact_id, occurred_at DESC);
CREATE INDEX interactions_by_expiry ON interactions (expires_at);
