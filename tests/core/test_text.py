"""What no store can hold is refused where it enters: contracts and edges share one rule."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from herald_core.contracts import ActionProposed, ContactCreated, ContactFacts, ReviewDecided
from herald_core.text import MAX_DEPTH, JsonRefused, read_json, storable, text_problem


@pytest.mark.parametrize(
    "fields",
    [
        {"first_name": "Ann\x00"},
        {"job_title": "x" * 10_001},
        {"deal_value_minor": 2**63},
        {"company": "\ud800"},
    ],
    ids=["nul", "too long", "past bigint", "lone surrogate"],
)
def test_a_contract_refuses_what_no_store_can_hold(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        ContactFacts.model_validate({"contact_id": "1", **fields})


def test_the_same_from_json_on_a_topic() -> None:
    body = {
        "contact": {"contact_id": "1", "first_name": "Ann\u0000"},
        "upstream_source": "hubspot",
        "upstream_event_id": "1",
        "occurred_at": "2026-12-01T10:00:00Z",
    }
    with pytest.raises(ValidationError, match="NUL"):
        ContactCreated.model_validate_json(json.dumps(body))


def test_a_list_where_a_tool_name_belongs_is_a_validation_error_not_a_type_error() -> None:
    with pytest.raises(ValidationError):
        ActionProposed.model_validate({"tool": ["send_email"], "input": {}})
    with pytest.raises(ValidationError):
        ReviewDecided.model_validate_json(json.dumps({"action": {"tool": [], "input": {}}}))


def test_fields_keep_their_own_longer_limits() -> None:
    assert len(ContactFacts(contact_id="1", job_title="x" * 10_000).job_title or "") == 10_000


def test_edges_refuse_deep_nesting_and_unstorable_json_with_their_reasons() -> None:
    with pytest.raises(JsonRefused) as deep:
        read_json("[" * 100_000 + "]" * 100_000)
    assert deep.value.error == "malformed_json"
    with pytest.raises(JsonRefused) as nested:
        read_json(json.dumps(_nested(MAX_DEPTH + 1)))
    assert "nests deeper" in nested.value.detail
    assert read_json(json.dumps(_nested(MAX_DEPTH))) == _nested(MAX_DEPTH)
    for bad, why in (('{"a": "\\u0000"}', "NUL"), ('{"a": 99999999999999999999}', "out of range")):
        with pytest.raises(JsonRefused) as refused:
            read_json(bad)
        assert refused.value.error == "unstorable_value" and why in refused.value.detail
    with pytest.raises(JsonRefused):
        read_json('{"a": NaN}')
    assert read_json('[{"a": "\\u0000"}]', storable_only=False) == [{"a": "\x00"}]


def test_text_written_about_a_refusal_is_made_storable() -> None:
    assert text_problem(storable("bad \x00 and \ud800 here")) is None
    assert storable("x" * 50, 10) == "x" * 10


def _nested(depth: int) -> object:
    value: object = 1
    for _ in range(depth):
        value = [value]
    return value


def test_times_at_the_ends_of_the_calendar_and_counts_past_any_call_are_refused() -> None:
    from herald_core.contracts import EmailReplied, LlmUsageReported

    base = {"contact_id": "1", "subject": "Re: hi", "upstream_source": "test", "upstream_event_id": "1"}
    for moment in ("0001-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59"):
        with pytest.raises(ValidationError, match="out of range"):
            EmailReplied.model_validate({**base, "occurred_at": moment})
    assert EmailReplied.model_validate({**base, "occurred_at": "2026-12-01T10:00:00Z"})
    usage = {
        "purpose": "draft",
        "model": "m",
        "input_tokens": 10,
        "output_tokens": 1,
        "occurred_at": "2026-12-01T10:00Z",
    }
    assert LlmUsageReported.model_validate(usage)
    with pytest.raises(ValidationError):
        LlmUsageReported.model_validate({**usage, "input_tokens": 2**63 - 1})
