"""Which workflows a tenant runs: its file's `workflows:` section, each entry validated against the workflow's
own model. A name the planner does not know, two workflows doing one job, or a bad entry is refused with the
reason (the event is dead-lettered with it), never guessed at."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from cases import TENANT

from herald_core.bus import Rejected
from herald_planner.engine.runner import Runner
from herald_planner.workflows import DEFAULT_WORKFLOWS, REGISTRY


def _runner() -> Runner:
    def no_ports(tenant: Any) -> Any:
        raise AssertionError("no step runs here")

    return Runner(
        REGISTRY,
        None,  # type: ignore[arg-type]  # no run is read: only the configuration is
        None,  # type: ignore[arg-type]
        no_ports,
        lambda: datetime.now(UTC),
        DEFAULT_WORKFLOWS,
        None,  # type: ignore[arg-type]
        None,  # type: ignore[arg-type]  # no decision is verified
    )


def _tenant(workflows: dict[str, Any] | None):  # type: ignore[no-untyped-def]
    return TENANT.model_copy(update={"workflows": workflows})


def test_a_tenant_without_a_section_runs_the_first_touch_and_one_with_a_section_runs_what_it_names() -> None:
    runner = _runner()
    assert [spec.name for spec, _ in runner.enabled(_tenant(None))] == ["new_lead_first_touch"]
    (only,) = runner.enabled(_tenant({"new_lead_sequence": {"waits_business_days": [2]}}))
    assert only[0].name == "new_lead_sequence" and only[1].touches == 2  # type: ignore[attr-defined]
    assert runner.enabled(_tenant({})) == []
    (defaults,) = runner.enabled(_tenant({"new_lead_sequence": None}))
    assert defaults[1].touches == 3  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("workflows", "says"),
    [
        ({"nurture_forever": {}}, "which this planner does not know"),
        ({"new_lead_first_touch": {}, "new_lead_sequence": {}}, "do the same job (new_lead)"),
        ({"new_lead_sequence": {"waits_business_days": [0]}}, "workflows.new_lead_sequence is invalid"),
        ({"new_lead_sequence": {"on_block": "retry"}}, "workflows.new_lead_sequence is invalid"),
        ({"new_lead_sequence": {"wait_days": [3]}}, "Extra inputs are not permitted"),
    ],
)
def test_a_section_the_planner_cannot_run_is_refused_with_the_reason(workflows: dict[str, Any], says: str) -> None:
    with pytest.raises(Rejected, match=says.replace("(", r"\(").replace(")", r"\)")):
        _runner().enabled(_tenant(workflows))


def test_the_sample_tenants_workflows_are_ones_the_planner_runs() -> None:
    from pathlib import Path

    import yaml

    from herald_core.tenants import TenantConfig

    sample = Path(__file__).parents[2] / "samples" / "tenants" / "acme.yaml"
    tenant = TenantConfig.model_validate(yaml.safe_load(sample.read_text()))
    assert [spec.name for spec, _ in _runner().enabled(tenant)] == ["new_lead_sequence"]
