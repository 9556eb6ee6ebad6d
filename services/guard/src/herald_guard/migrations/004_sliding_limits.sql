-- Caps over sliding windows. One row per approval counted against a counter (a limit, and the tenant,
-- campaign or contact it counts for); a limit's count is its rows inside the window. A reservation
-- holds a transaction-scoped advisory lock per counter (taken in counter order), so replicas racing on
-- one counter are serialised and the count stays exact; the decision row in the same transaction makes
-- a redelivered proposal find its decision instead of counting again.
CREATE TABLE limit_reservations (
    tenant      text        NOT NULL,
    counter     text        NOT NULL,
    action_id   text        NOT NULL,
    reserved_at timestamptz NOT NULL,
    PRIMARY KEY (tenant, counter, action_id)
);
CREATE INDEX limit_reservations_window ON limit_reservations (tenant, counter, reserved_at);
CREATE INDEX limit_reservations_age ON limit_reservations (reserved_at);
DROP TABLE send_counters;
