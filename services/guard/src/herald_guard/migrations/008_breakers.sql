-- Circuit breakers count, per window, the guard's approvals (by campaign) and the delivery problems
-- (hard bounces, complaints, unsubscribes) the consent feed brought in.
ALTER TABLE decisions ADD COLUMN campaign_id text;
CREATE INDEX decisions_approved ON decisions (tenant, decided_at) WHERE outcome = 'approve';
CREATE TABLE delivery_problems (
    tenant            text        NOT NULL,
    upstream_source   text        NOT NULL,
    upstream_event_id text        NOT NULL,
    contact_id        text        NOT NULL,
    reason            text        NOT NULL,
    occurred_at       timestamptz NOT NULL,
    PRIMARY KEY (tenant, upstream_source, upstream_event_id)
);
CREATE INDEX delivery_problems_window ON delivery_problems (tenant, occurred_at);
