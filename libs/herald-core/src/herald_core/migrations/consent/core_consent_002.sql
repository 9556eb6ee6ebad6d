-- Erasure keeps a suppression entry without personal data: the contact id and the address as hashes.
ALTER TABLE suppression ADD COLUMN email_sha256 text;
CREATE INDEX suppression_email_sha256 ON suppression (tenant, email_sha256) WHERE email_sha256 IS NOT NULL;
