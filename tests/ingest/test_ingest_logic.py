"""Ingest's pure logic, no servers: HubSpot signatures, the mapping to Herald's contracts, trace
context, messages and the contacts file."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from herald_core.contracts import ConsentReason, ConsentWithdrawn, ContactCreated, ContactFacts, ContactUpdated
from herald_core.topics import CONSENT, EVENTS
from herald_ingest.logic import (
    HubSpotEvent,
    apply_property,
    classify,
    continue_trace,
    messages_for,
    parse_contact_lines,
    property_change,
    to_contract,
    verify_bearer,
    verify_hubspot_v3,
)

SECRET = "app-secret"
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
URI = "https://herald.example.com/v1/webhooks/hubspot/acme"


def _ms(moment: datetime) -> str:
    return str(int(moment.timestamp() * 1000))


def _signature(uri: str, body: bytes, timestamp: str, secret: str = SECRET) -> str:
    message = b"POST" + uri.encode() + body + timestamp.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def _verify(*, uri: str = URI, body: bytes = b"[]", timestamp: str | None = None, signature: str | None = None):  # type: ignore[no-untyped-def]
    timestamp = timestamp if timestamp is not None else _ms(NOW)
    return verify_hubspot_v3(
        secret=SECRET,
        method="POST",
        uri=uri,
        body=body,
        timestamp=timestamp,
        signature=signature if signature is not None else _signature(uri, body, timestamp),
        now=NOW,
        max_age_seconds=300,
    )


def test_a_correct_signature_within_five_minutes_passes() -> None:
    assert _verify() is None
    assert _verify(timestamp=_ms(NOW - timedelta(seconds=299))) is None
    assert _verify(timestamp=_ms(NOW + timedelta(seconds=299))) is None


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"signature": ""}, "missing_signature"),
        ({"timestamp": ""}, "missing_signature"),
        ({"timestamp": "yesterday"}, "bad_timestamp"),
        ({"timestamp": _ms(NOW - timedelta(seconds=301))}, "stale_timestamp"),
        ({"timestamp": _ms(NOW + timedelta(seconds=301))}, "stale_timestamp"),
        ({"signature": _signature(URI, b"[]", _ms(NOW), secret="other")}, "bad_signature"),
        ({"signature": _signature(URI + "?x=1", b"[]", _ms(NOW))}, "bad_signature"),
        ({"signature": _signature(URI, b"[ ]", _ms(NOW))}, "bad_signature"),
    ],
)
def test_a_bad_or_stale_signature_is_refused_with_its_reason(kwargs, error: str) -> None:  # type: ignore[no-untyped-def]
    problem = _verify(**kwargs)
    assert problem is not None
    assert problem[0] == error


def test_the_uri_is_signed_with_hubspots_escapes_decoded() -> None:
    encoded = URI + "?next=%2Fhome%3Fa%3A1"
    decoded = URI + "?next=/home?a:1"
    assert _verify(uri=encoded, signature=_signature(decoded, b"[]", _ms(NOW))) is None


@pytest.mark.parametrize(
    ("authorization", "tokens", "answer"),
    [
        ("Bearer old-token", ["old-token", "new-token"], None),
        ("bearer  new-token ", ["old-token", "new-token"], None),  # the scheme is case-insensitive
        (None, ["held-token"], (401, "missing_credentials")),
        ("Basic dDp0", ["held-token"], (401, "missing_credentials")),
        ("Bearer", ["held-token"], (401, "missing_credentials")),
        ("Bearer other", ["old-token", "new-token"], (403, "bad_credentials")),
        ("Bearer old-toke", ["old-token"], (403, "bad_credentials")),
        ("Bearer old-token", ["", ""], (503, "credentials_unavailable")),  # an empty file is no token
        ("Bearer old-token", [], (503, "credentials_unavailable")),
    ],
)
def test_a_bearer_token_is_one_of_the_tenants_or_refused_with_its_reason(
    authorization: str | None, tokens: list[str], answer: tuple[int, str] | None
) -> None:
    problem = verify_bearer(authorization, tokens)
    assert (problem[:2] if problem else None) == answer
    if problem:  # what was sent and what is held stay out of the reason
        assert not any(token and token in problem[2] for token in [*tokens, "other"])


def _event(**fields: object) -> HubSpotEvent:
    return HubSpotEvent.model_validate(
        {
            "eventId": 7,
            "portalId": 62515,
            "occurredAt": 1_764_000_000_000,
            "subscriptionType": "contact.creation",
            "objectId": 51,
            **fields,
        }
    )


CONTACT = ContactFacts(contact_id="51", email="dana@globex.example", first_name="Dana")


def test_hubspot_events_map_to_herald_facts() -> None:
    created = to_contract(_event(), CONTACT)
    assert isinstance(created, ContactCreated)
    assert created.contact == CONTACT
    assert created.upstream_event_id == "7"
    assert created.occurred_at == datetime.fromtimestamp(1_764_000_000, UTC)

    optout = _event(subscriptionType="contact.propertyChange", propertyName="hs_email_optout", propertyValue="TRUE")
    withdrawn = to_contract(optout, CONTACT)
    assert isinstance(withdrawn, ConsentWithdrawn)
    assert (withdrawn.contact_id, withdrawn.email, withdrawn.reason) == ("51", CONTACT.email, ConsentReason.UNSUBSCRIBE)

    opt_in = _event(subscriptionType="contact.propertyChange", propertyName="hs_email_optout", propertyValue="false")
    assert isinstance(to_contract(opt_in, CONTACT), ContactUpdated)
    changed = to_contract(
        _event(subscriptionType="contact.propertyChange", propertyName="company", propertyValue="X"), CONTACT
    )
    assert isinstance(changed, ContactUpdated)
    assert (changed.changed_property, changed.new_value) == ("company", "X")

    assert classify(_event(subscriptionType="contact.deletion")) is None
    with pytest.raises(ValueError, match="unsupported subscriptionType"):
        to_contract(_event(subscriptionType="contact.deletion"), CONTACT)


def test_property_changes_apply_to_the_contact_facts() -> None:
    assert property_change("jobtitle", "CTO") == ("job_title", "CTO")
    assert property_change("industry", "Logistics") == ("industry", "logistics")
    assert property_change("hs_email_optout", "true") == ("opted_out", True)
    assert property_change("company", "") == ("company", None)
    assert property_change("hs_lead_status", "OPEN") is None
    assert apply_property(CONTACT, "job_title", "CTO").job_title == "CTO"
    assert apply_property(CONTACT, "opted_out", True) == CONTACT  # stored, not a contact fact
    with pytest.raises(ValidationError):
        apply_property(CONTACT, "email", "not an address")


def test_a_valid_traceparent_is_continued_anything_else_starts_a_trace() -> None:
    parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    child = continue_trace(parent)
    assert child.split("-")[1] == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert child.split("-")[2] != "00f067aa0ba902b7"
    for bad in (
        None,
        "",
        "garbage",
        "00-" + "0" * 32 + "-00f067aa0ba902b7-01",
        "ff-" + "a" * 32 + "-" + "b" * 16 + "-01",
    ):
        fresh = continue_trace(bad)
        assert len(fresh.split("-")[1]) == 32
        assert fresh.split("-")[1] not in {"0" * 32, "a" * 32}


def test_a_withdrawal_goes_to_events_and_to_the_consent_topic_keyed_by_channel() -> None:
    withdrawn = to_contract(
        _event(subscriptionType="contact.propertyChange", propertyName="hs_email_optout", propertyValue="true"),
        CONTACT,
    )
    events, consent = messages_for("acme", withdrawn, continue_trace(None))
    assert (events.topic, events.key) == (EVENTS, b"acme:51")
    assert (consent.topic, consent.key) == (CONSENT, b"acme:51:email")
    assert events.envelope.subject == "contact/51"
    assert events.envelope.source == "herald/ingest"
    [only] = messages_for("acme", to_contract(_event(), CONTACT), continue_trace(None))
    assert only.topic == EVENTS
    assert only.envelope.correlation_id != events.envelope.correlation_id


def test_the_contacts_file_is_read_line_by_line_with_numbered_errors() -> None:
    contacts, errors = parse_contact_lines(
        [
            '{"contact_id": 1, "email": "a@b.example", "opted_out": true, "created_at": "2026-10-07T23:04:00Z"}',
            "",
            '{"contact_id": "x"}',
            '{"contact_id": 2, "deal_value_minor": -5}',
        ]
    )
    assert [c.id for c in contacts] == ["1"]
    assert contacts[0].opted_out
    assert [e.split(":")[0] for e in errors] == ["line 3", "line 4"]
