-- What lead qualification reads besides title and industry: the company's size (employees; a CRM range counts as
-- its lower bound) and the contact's owner in the CRM, the person a hot lead is handed to.
ALTER TABLE contacts ADD COLUMN company_size integer CHECK (company_size >= 0);
ALTER TABLE contacts ADD COLUMN owner text;
