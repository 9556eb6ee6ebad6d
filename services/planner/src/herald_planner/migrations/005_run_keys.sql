-- A workflow may run more than once per contact, one run per key its spec derives from the starting event (one
-- per reply, say); a workflow without keys runs once per contact, ever, as before (its key is '').
ALTER TABLE workflow_runs ADD COLUMN run_key text NOT NULL DEFAULT '';
ALTER TABLE workflow_runs DROP CONSTRAINT IF EXISTS workflow_runs_tenant_contact_id_workflow_key;
ALTER TABLE workflow_runs ADD CONSTRAINT workflow_runs_one_per_key UNIQUE (tenant, contact_id, workflow, run_key);
