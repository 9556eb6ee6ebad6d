-- The event that started a run, and the messages the run published for it: if the Kafka transaction that
-- carried them was aborted, the event is read again and exactly these messages are published again.
ALTER TABLE workflow_runs ADD COLUMN trigger_id text;
ALTER TABLE workflow_runs ADD COLUMN outputs jsonb;
