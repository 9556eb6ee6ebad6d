-- Executions in doubt (the executor stopped mid-call and the downstream cannot say whether it acted) come to
-- the queue too: a person checks the downstream and records what happened. They are resolved, not approved.
ALTER TABLE items ADD COLUMN kind text NOT NULL DEFAULT 'approval' CHECK (kind IN ('approval', 'in_doubt'));
ALTER TABLE items DROP CONSTRAINT items_status_check;
ALTER TABLE items ADD CONSTRAINT items_status_check
    CHECK (status IN ('pending', 'approved', 'rejected', 'happened', 'did_not_happen'));
