"""Every workflow the planner runs. Adding one is a module here and a line in `REGISTRY`."""

from __future__ import annotations

from herald_planner.engine.spec import WorkflowSpec
from herald_planner.workflows import first_touch, qualification, replies, sequence

REGISTRY: tuple[WorkflowSpec, ...] = (first_touch.SPEC, sequence.SPEC, replies.SPEC, qualification.SPEC)

#: what a tenant runs when its file has no `workflows:` section
DEFAULT_WORKFLOWS: dict[str, dict[str, object]] = {first_touch.SPEC.name: {}}
