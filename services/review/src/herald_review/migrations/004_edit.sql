-- A reviewer's change to an email draft approved with it (subject and/or body); the guard decides the edited email.
ALTER TABLE items ADD COLUMN edit jsonb;
