-- The emails Herald sent, as the executor reported them (herald.executed.v1): a reply's In-Reply-To or References
-- name one of their Message-IDs, and so the contact and the run it answers. Erasing a contact deletes its rows.
CREATE TABLE sent_emails (
    tenant text NOT NULL,
    action_id text NOT NULL,
    message_id text,
    contact_id text NOT NULL,
    workflow_id text NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, action_id)
);
CREATE INDEX sent_emails_message ON sent_emails (tenant, message_id) WHERE message_id IS NOT NULL;
CREATE INDEX sent_emails_contact ON sent_emails (tenant, contact_id);
