-- LLM tokens reported per call (once per message), summed per tenant and UTC day against the budget.
CREATE TABLE llm_usage (
    message_id  text        PRIMARY KEY,
    tenant      text        NOT NULL,
    day         date        NOT NULL,
    tokens      bigint      NOT NULL,
    recorded_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX llm_usage_day ON llm_usage (tenant, day);
