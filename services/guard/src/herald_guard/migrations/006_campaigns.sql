-- A campaign is launched by its first approved send; until then its actions have `campaign.first_send`.
CREATE TABLE campaigns (
    tenant          text        NOT NULL,
    campaign_id     text        NOT NULL,
    first_action_id text        NOT NULL,
    launched_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant, campaign_id)
);
