-- Actions held until their send window opens: the guard's releaser decides them again at release_at.
-- A row is leased (leased_until) while a replica releases it, and deleted once the release is published.
ALTER TABLE decisions ADD COLUMN release_at timestamptz;
ALTER TABLE decisions DROP CONSTRAINT decisions_outcome_check;
ALTER TABLE decisions ADD CONSTRAINT decisions_outcome_check CHECK (outcome IN ('approve', 'block', 'escalate', 'defer'));
ALTER TABLE decisions DROP CONSTRAINT decisions_stage_check;
ALTER TABLE decisions ADD CONSTRAINT decisions_stage_check CHECK (stage IN ('proposal', 'review', 'release'));
CREATE TABLE deferred (
    action_id    text        NOT NULL,
    stage        text        NOT NULL,
    tenant       text        NOT NULL,
    release_at   timestamptz NOT NULL,
    approved_by  text        NOT NULL,
    action       jsonb       NOT NULL,
    envelope     jsonb       NOT NULL,
    leased_until timestamptz,
    PRIMARY KEY (action_id, stage)
);
CREATE INDEX deferred_due ON deferred (release_at);
