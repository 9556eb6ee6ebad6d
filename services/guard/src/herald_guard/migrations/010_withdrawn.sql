-- Actions their workflow withdrew (the contact answered while the action waited for a review or a window):
-- any later decision of one blocks it as `workflow.withdrawn`.
CREATE TABLE withdrawn (
    action_id    text        PRIMARY KEY,
    tenant       text        NOT NULL,
    reason       text        NOT NULL,
    withdrawn_at timestamptz NOT NULL DEFAULT now()
);
