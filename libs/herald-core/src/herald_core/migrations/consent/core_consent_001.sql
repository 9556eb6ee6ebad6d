-- The consent feed's tables (herald_core.consent.ConsentFeed), in the using service's schema.
CREATE TABLE suppression (
    tenant text NOT NULL,
    contact_id text NOT NULL,
    channel text NOT NULL,
    suppressed boolean NOT NULL,
    reason text NOT NULL,
    email text,
    source_offset bigint NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, contact_id, channel)
);
CREATE INDEX suppression_email ON suppression (tenant, lower(email)) WHERE suppressed;
CREATE TABLE consent_offsets (partition int PRIMARY KEY, next_offset bigint NOT NULL);
