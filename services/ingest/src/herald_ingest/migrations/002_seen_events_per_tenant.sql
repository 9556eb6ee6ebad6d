-- An upstream event id is unique per sender, not across tenants (two HubSpot portals may both send
-- eventId 100): de-duplicate per tenant, so one tenant's events can never shadow another's.
ALTER TABLE seen_events DROP CONSTRAINT seen_events_pkey;
ALTER TABLE seen_events ADD PRIMARY KEY (tenant, source, event_id);
