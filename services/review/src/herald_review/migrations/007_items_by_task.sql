-- A campaign task's proposals are one batch in review: the queue lists them by the task id their action carries.
CREATE INDEX items_by_task ON items ((action ->> 'task_id'), created_at) WHERE action ->> 'task_id' IS NOT NULL;
