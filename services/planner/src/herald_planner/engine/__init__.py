"""The planner's workflow engine: workflows declared as specs (`spec`), decided by a pure `advance`, carried out
by one runner for all of them (`runner`), with durable timers fired from Postgres (`firer`)."""
