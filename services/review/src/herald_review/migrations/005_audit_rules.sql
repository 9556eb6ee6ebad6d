-- Every rule that did not simply pass on a record — a block's rule, each rule an escalation, an approval or a
-- deferral lists as escalating, blocking or holding — so "which records did escalation.vip touch" has an
-- answer, not only the blocks (whose `rule` column names one rule).
ALTER TABLE audit_index ADD COLUMN rules text[] NOT NULL DEFAULT '{}';
UPDATE audit_index SET rules = ARRAY(
    SELECT DISTINCT r FROM (
        SELECT hit ->> 'rule' AS r
        FROM jsonb_array_elements(CASE WHEN jsonb_typeof(body -> 'rules') = 'array' THEN body -> 'rules' ELSE '[]' END) hit
        WHERE jsonb_typeof(hit) = 'object' AND hit ->> 'outcome' IS DISTINCT FROM 'pass'
        UNION SELECT rule
    ) named WHERE r IS NOT NULL ORDER BY r
);
CREATE INDEX audit_by_rules ON audit_index USING gin (rules);
