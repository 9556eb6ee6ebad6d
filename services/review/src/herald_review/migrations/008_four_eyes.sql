-- high-risk items need two distinct approvers: how many an item needs, and the approvals it has so far
ALTER TABLE review.items ADD COLUMN approvals_needed int NOT NULL DEFAULT 1;
ALTER TABLE review.items ADD COLUMN approvals jsonb NOT NULL DEFAULT '[]';
