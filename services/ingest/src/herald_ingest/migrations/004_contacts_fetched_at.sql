-- When a contact was last read from the tenant's CRM (HubSpot's API); NULL for one only seeded or sent to Herald.
-- A reader can tell a copy gone stale, and a row the CRM never confirmed.
ALTER TABLE contacts ADD COLUMN fetched_at timestamptz;
