-- An execution in doubt keeps its action until a person checks the downstream (what campaign statistics
-- need if the email did leave); the person's finding settles the row: in_doubt → sent | failed.
ALTER TABLE ledger ADD COLUMN action jsonb;
ALTER TABLE ledger ADD COLUMN resolution jsonb;
