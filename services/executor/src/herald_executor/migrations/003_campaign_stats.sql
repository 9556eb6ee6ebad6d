-- What campaign statistics are counted from (fetch_campaign_stats).
-- `messages`: every email the executor sent, written with the ledger's `sent` (same transaction).
-- `message_events`: what happened to them, from herald.events.v1 (engagement, replies, unsubscribes),
-- one row per upstream event; an event that names no message is attributed to the contact's latest
-- email before it.
CREATE TABLE messages (
    message_id text PRIMARY KEY,
    tenant text NOT NULL,
    action_id text NOT NULL,
    contact_id text NOT NULL,
    campaign_id text,
    variant text,
    sent_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX messages_campaign ON messages (tenant, campaign_id);
CREATE INDEX messages_contact ON messages (tenant, contact_id, sent_at);

CREATE TABLE message_events (
    event_key text PRIMARY KEY,
    tenant text NOT NULL,
    contact_id text NOT NULL,
    message_id text,
    campaign_id text,
    variant text,
    kind text NOT NULL CHECK (kind IN ('delivered', 'opened', 'clicked', 'bounced', 'complained', 'replied', 'unsubscribed')),
    occurred_at timestamptz NOT NULL
);
CREATE INDEX message_events_message ON message_events (message_id);
CREATE INDEX message_events_campaign ON message_events (tenant, campaign_id);
