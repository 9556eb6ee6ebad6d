"""The planner reads exactly the topics the topic table names it a consumer of (the ACLs are made from the
table): its runner's subscriptions come from the registered workflows, so a workflow that handles a new type
of event changes them, and this test says whether the table followed."""

from __future__ import annotations

from herald_core.topics import CONTROL, TOPICS
from herald_planner.engine.runner import subscriptions
from herald_planner.workflows import REGISTRY


def test_the_runner_subscribes_to_the_topics_the_table_names_the_planner_a_consumer_of() -> None:
    followed = {CONTROL.name}  # spent LLM budgets, followed outside the consumer group (LlmBudgets)
    read = {spec.name for spec in subscriptions(REGISTRY)}
    assert read | followed == {spec.name for spec in TOPICS if "planner" in spec.consumers}
    assert not read & followed


def test_every_workflow_name_is_unique_and_every_state_of_a_transition_is_declared() -> None:
    names = [spec.name for spec in REGISTRY]
    assert len(names) == len(set(names))
    for spec in REGISTRY:
        assert {state for state, _ in spec.transitions} <= set(spec.active)
        assert spec.steps, f"{spec.name} proposes nothing"
