"""Contracts refuse what must never reach a tool: header injection, several recipients, oversize bodies."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from herald_core.contracts import SendEmailInput


@pytest.mark.parametrize(
    "address", ["a@b.example", "jordan.reyes@northwindfreight.example", "lead-1a2b-4@north-wind.example"]
)
def test_plain_addresses_are_accepted(address: str) -> None:
    assert SendEmailInput(to=address, subject="Hello", body_text="Hi").to == address


@pytest.mark.parametrize(
    "address",
    [
        "x@y",
        "a b@c.example",
        "a@b.example\r\nBcc: victim@d.example",
        "<a@b.example>",
        "a@b.example,c@d.example",
        "Maya <a@b.example>",
        "@b.example",
        "a@-b.example",
        "",
    ],
)
def test_anything_but_one_plain_address_is_refused(address: str) -> None:
    with pytest.raises(ValidationError):
        SendEmailInput(to=address, subject="Hello", body_text="Hi")


@pytest.mark.parametrize("field", ["subject", "to_name"])
def test_header_fields_are_one_line(field: str) -> None:
    values = {"to": "a@b.example", "subject": "Hello", "body_text": "Hi", field: "Hi\r\nBcc: victim@d.example"}
    with pytest.raises(ValidationError):
        SendEmailInput(**values)


def test_oversize_body_is_refused() -> None:
    with pytest.raises(ValidationError):
        SendEmailInput(to="a@b.example", subject="Hello", body_text="x" * 20_001)
