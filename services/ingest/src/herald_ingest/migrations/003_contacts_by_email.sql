-- Bounces and complaints name an address, not a contact: find its contacts by address, case-insensitively.
CREATE INDEX contacts_by_email ON contacts (tenant, lower(email));
