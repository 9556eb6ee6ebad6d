"""The tool registry: one typed input and output per tool, the Anthropic schema made from them, and every
kind of bad input refused as a permanent failure that names the field."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from herald_core.contracts import TOOL_INPUTS, ActionProposed
from herald_core.policy_cases import SAMPLE_ACTION
from herald_core.tools import TOOLS, FailureKind, ToolInputInvalid, anthropic_tool, validate_input

GOOD: dict[str, dict[str, Any]] = {
    "send_email": {"to": "jordan@northwind.example", "subject": "Hello", "body_text": "Hi Jordan"},
    "update_crm_record": {"contact_id": "5100001", "properties": {"lifecycle_stage": "opportunity"}},
    "create_contact": {"email": "sam.lee@northwind.example", "referred_by": "5100001"},
    "schedule_meeting": {
        "contact_id": "5100001",
        "attendee_email": "jordan@northwind.example",
        "title": "Acme Relay walkthrough",
        "starts_at": "2026-12-01T15:00:00-06:00",
        "duration_minutes": 30,
    },
    "generate_image": {"template": "banner", "headline": "Carrier exceptions, handled"},
    "fetch_campaign_stats": {"campaign_id": "spring-launch"},
    "find_free_slots": {"duration_minutes": 30, "after": "2026-12-01T09:00:00-05:00", "business_days": 5},
}


def test_every_tool_has_an_anthropic_schema_and_only_reads_need_no_approval() -> None:
    assert set(TOOLS) == set(GOOD)
    for name in TOOLS:
        tool = anthropic_tool(name)
        assert tool["name"] == name and tool["description"]
        assert tool["input_schema"]["type"] == "object" and tool["input_schema"]["required"]
        assert validate_input(name, GOOD[name])  # what the model would send validates
    assert [n for n, spec in TOOLS.items() if not spec.needs_approval] == ["fetch_campaign_stats", "find_free_slots"]


@pytest.mark.parametrize(
    ("tool", "change", "field"),
    [
        ("send_email", {"subject": "Hello\r\nBcc: everyone@list.example"}, "subject"),
        ("send_email", {"to": "jordan@northwind.example, boss@northwind.example"}, "to"),
        ("send_email", {"to_name": "Jordan\nBcc: x@y.example"}, "to_name"),
        ("send_email", {"body_text": "x" * 20_001}, "body_text"),
        ("send_email", {"subject": None}, "subject"),
        ("update_crm_record", {"properties": {"hs_password": "x"}}, "properties"),
        ("update_crm_record", {"properties": {}}, "properties"),
        ("create_contact", {"email": "sam@northwind.example, boss@other.example"}, "email"),
        ("create_contact", {"first_name": "Sam\r\nBcc: x@y.example"}, "first_name"),
        ("schedule_meeting", {"starts_at": "2026-12-01T15:00:00"}, "starts_at"),  # no time zone
        ("schedule_meeting", {"duration_minutes": "an hour"}, "duration_minutes"),
        ("schedule_meeting", {"title": "Walkthrough\r\nATTENDEE:mailto:x@y.example"}, "title"),
        ("generate_image", {"template": "poster"}, "template"),
        ("fetch_campaign_stats", {"campaign_id": "../../etc"}, "campaign_id"),
        ("find_free_slots", {"after": "2026-12-01T09:00:00"}, "after"),  # no time zone
        ("find_free_slots", {"business_days": 90}, "business_days"),
        ("send_email", {"surprise": True}, "surprise"),
    ],
)
def test_a_bad_input_is_a_permanent_failure_naming_the_field(tool: str, change: dict[str, Any], field: str) -> None:
    with pytest.raises(ToolInputInvalid) as refused:
        validate_input(tool, {**GOOD[tool], **change})
    failure = refused.value.failure
    assert failure.kind is FailureKind.PERMANENT and failure.code == "invalid_input"
    assert field in failure.message


def test_an_unknown_tool_is_refused_with_the_known_ones() -> None:
    with pytest.raises(
        ToolInputInvalid, match="known: create_contact, fetch_campaign_stats, find_free_slots, generate_image"
    ):
        validate_input("delete_everything", {})


def test_an_action_carries_the_input_of_its_own_tool_and_nothing_else() -> None:
    for name, data in GOOD.items():
        action = ActionProposed.model_validate({**SAMPLE_ACTION, "tenant": "acme", "tool": name, "input": data})
        assert type(action.input) is TOOL_INPUTS[name]
        assert ActionProposed.model_validate_json(action.model_dump_json()) == action  # as it travels on Kafka
        assert action.describe()
    with pytest.raises(ValidationError, match="properties"):
        ActionProposed.model_validate(
            {**SAMPLE_ACTION, "tenant": "acme", "tool": "update_crm_record", "input": GOOD["send_email"]}
        )
    meeting = ActionProposed.model_validate(
        {**SAMPLE_ACTION, "tenant": "acme", "tool": "schedule_meeting", "input": GOOD["schedule_meeting"]}
    )
    assert meeting.recipient == "jordan@northwind.example" and meeting.text[0] == "Acme Relay walkthrough"
    crm = ActionProposed.model_validate(
        {**SAMPLE_ACTION, "tenant": "acme", "tool": "update_crm_record", "input": GOOD["update_crm_record"]}
    )
    assert crm.recipient is None and "lifecycle_stage: opportunity" in crm.text[1]
