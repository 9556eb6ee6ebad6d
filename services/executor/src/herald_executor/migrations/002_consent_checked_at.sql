-- When the consent state checked before the side effect was read from the consent topic (its end
-- offsets): an opt-out written before that moment was applied before the send.
ALTER TABLE ledger ADD COLUMN consent_checked_at timestamptz;
