-- Reviewers' edits and reasons, kept as examples for later drafts of the same workflow, touch and segment.
-- The text is kept with the contact's names replaced by placeholders ({first_name}, {company} …): an example
-- teaches wording, it does not remember a person.
CREATE TABLE draft_examples (
    review_id text PRIMARY KEY,
    tenant text NOT NULL,
    workflow text NOT NULL,
    step text NOT NULL,  -- the workflow's step the draft was for, e.g. touch_1
    segment text NOT NULL,
    decision text NOT NULL,
    reviewer text NOT NULL,
    reason text,
    original_subject text NOT NULL,
    original_body text NOT NULL,
    edited_subject text,
    edited_body text,
    decided_at timestamptz NOT NULL
);
CREATE INDEX draft_examples_segment ON draft_examples (tenant, workflow, segment, step, decided_at DESC);

-- which step of its run an action was proposed by (touch_1, touch_2 …): what a reviewer's example is kept under
ALTER TABLE run_actions ADD COLUMN step text;
