-- When the consent state a decision was checked against was read from the consent topic (its end
-- offsets): an opt-out written before that moment was applied before the decision.
ALTER TABLE decisions ADD COLUMN consent_checked_at timestamptz;
