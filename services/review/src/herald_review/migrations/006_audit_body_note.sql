-- What the index did to store a record it could not keep as the record holds it (NULL: kept as it is). A NUL
-- character or a lone surrogate, which Postgres text and jsonb refuse, is written as the six characters of its
-- JSON escape (`\u0000`); an id that is not text is left NULL; a body that is not JSON, or a row Postgres
-- refuses even so, keeps only {"sha256": <of the record's value>, "reason": …} as its body ("body hashed: …").
-- The sealed audit topic always holds the record itself, byte for byte.
ALTER TABLE audit_index ADD COLUMN body_note text;
