-- Where a tenant's shadow policy would have decided otherwise than its live one (never enforced).
CREATE TABLE shadow_differences (
    action_id      text        NOT NULL,
    stage          text        NOT NULL,
    tenant         text        NOT NULL,
    live_version   text        NOT NULL,
    live_outcome   text        NOT NULL,
    live_rule      text,
    shadow_version text        NOT NULL,
    shadow_outcome text        NOT NULL,
    shadow_rule    text,
    shadow_reason  text        NOT NULL,
    decided_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (action_id, stage, shadow_version)
);
CREATE INDEX shadow_differences_tenant ON shadow_differences (tenant, decided_at);
