-- The review queue: one item per ReviewRequested, decided once.
CREATE TABLE items (
    review_id text PRIMARY KEY,
    tenant text NOT NULL,
    action_id text NOT NULL,
    contact_id text NOT NULL,
    reason text NOT NULL,
    rules jsonb NOT NULL,
    action jsonb NOT NULL,
    status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'approved', 'rejected')),
    reviewer text,
    decision_reason text,
    correlation_id text NOT NULL,
    request_message_id text NOT NULL,
    traceparent text,
    created_at timestamptz NOT NULL DEFAULT now(),
    decided_at timestamptz
);
CREATE INDEX items_queue ON items (tenant, status, created_at);
