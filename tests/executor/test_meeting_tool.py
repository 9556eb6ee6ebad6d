"""The schedule_meeting adapter against the stack's real Radicale and SMTP server, where the executor's retries and
restarts meet it: a repeated call books and invites once; an invite that could not leave is sent by the retry
without a second event; `reconcile` tells "nothing done", "done" and "the invite may have left" apart; CalDAV
failures are typed; two executors racing for one slot book it once."""

from __future__ import annotations

import asyncio
import random
import secrets
import socket
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from herald_core.contracts import ActionProposed, FailureKind
from herald_core.tenants import TenantConfig
from herald_executor.adapters.calendar import MeetingTool
from herald_executor.adapters.smtp import SmtpSender
from herald_executor.logic import Reconciled, ToolError
from herald_executor.settings import Settings
from herald_stack.config import StackConfig
from support import acme_tenant, calendar_events, email_action, eventually, mails_to

pytestmark = [pytest.mark.smtp]

TEN_AM = datetime(2031, 3, 4, 10, 0, tzinfo=ZoneInfo("America/New_York"))


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def settings_for(config: StackConfig, **overrides: object) -> Settings:
    fields: dict[str, object] = {
        "caldav_url": config.caldav_url,
        "caldav_username": config.caldav_user,
        "caldav_password": config.caldav_password,
        "smtp_port": config.smtp_port,
        **overrides,
    }
    settings: Settings = Settings.model_validate(fields)
    return settings


def tenant_config() -> TenantConfig:
    return acme_tenant(f"mt{secrets.token_hex(4)}")


def meeting(tenant: TenantConfig, starts_at: datetime = TEN_AM, minutes: int = 30) -> ActionProposed:
    contact_id = f"c{secrets.token_hex(4)}"
    base = email_action(tenant.tenant_id, contact_id=contact_id, email=f"{contact_id}@buyers.example")
    spec = {
        "contact_id": contact_id,
        "attendee_email": f"{contact_id}@buyers.example",
        "title": "Carrier exceptions",
        "starts_at": starts_at.isoformat(),
        "duration_minutes": minutes,
    }
    return ActionProposed.model_validate({**base.model_dump(mode="json"), "tool": "schedule_meeting", "input": spec})


def make(tools: list[MeetingTool], config: StackConfig, **overrides: object) -> MeetingTool:
    settings = settings_for(config, **overrides)
    tool = MeetingTool(settings, SmtpSender(settings, pool_size=2))
    tools.append(tool)
    return tool


async def test_a_repeated_call_books_and_invites_once_and_reconciles_as_done(stack, tools) -> None:  # type: ignore[no-untyped-def]
    tool, tenant = make(tools, stack.config), tenant_config()
    action = meeting(tenant)
    assert action.recipient is not None
    assert await tool.reconcile(action, tenant) == (Reconciled.SAFE_TO_RUN, None)

    output = await tool.run(action, tenant)
    assert [str(e["UID"]) for e in calendar_events(stack.config, tenant.tenant_id)] == [output.uid]
    await eventually(lambda: len(mails_to(stack.config.maildir, action.recipient)) == 1, what="the invite")
    assert await tool.reconcile(action, tenant) == (Reconciled.DONE, output)

    # as after a lost ledger write: run again — the stored event says it was invited, so nothing is repeated
    assert await tool.run(action, tenant) == output
    assert len(calendar_events(stack.config, tenant.tenant_id)) == 1
    assert len(mails_to(stack.config.maildir, action.recipient)) == 1


async def test_an_invite_that_could_not_leave_is_sent_by_the_retry_without_a_second_event(stack, tools) -> None:  # type: ignore[no-untyped-def]
    no_smtp = make(tools, stack.config, smtp_port=closed_port())
    tool, tenant = make(tools, stack.config), tenant_config()
    action = meeting(tenant)
    assert action.recipient is not None

    with pytest.raises(ToolError) as refused:
        await no_smtp.run(action, tenant)
    assert (refused.value.kind, refused.value.code) == (FailureKind.RETRYABLE, "smtp_unavailable")
    assert not refused.value.may_have_applied  # so the runner may retry it
    assert len(calendar_events(stack.config, tenant.tenant_id)) == 1
    assert mails_to(stack.config.maildir, action.recipient) == []
    # had the call been cut off here, nobody could tell whether the invite left
    assert await tool.reconcile(action, tenant) == (Reconciled.UNKNOWN, None)

    output = await tool.run(action, tenant)
    assert [str(e["UID"]) for e in calendar_events(stack.config, tenant.tenant_id)] == [output.uid]
    (mail,) = await eventually(lambda: mails_to(stack.config.maildir, action.recipient), what="the invite")
    assert mail["Message-ID"] == output.invite_message_id
    assert await tool.reconcile(action, tenant) == (Reconciled.DONE, output)


async def test_caldav_failures_are_typed_and_nothing_is_sent(stack, tools) -> None:  # type: ignore[no-untyped-def]
    tenant = tenant_config()
    action = meeting(tenant)
    assert action.recipient is not None

    with pytest.raises(ToolError) as wrong_password:
        await make(tools, stack.config, caldav_password="not-the-password").run(action, tenant)
    assert (wrong_password.value.kind, wrong_password.value.code) == (FailureKind.PERMANENT, "caldav_unauthorized")

    with pytest.raises(ToolError) as unreachable:
        await make(tools, stack.config, caldav_url=f"http://127.0.0.1:{closed_port()}/").run(action, tenant)
    assert (unreachable.value.kind, unreachable.value.code) == (FailureKind.RETRYABLE, "caldav_unavailable")
    assert not unreachable.value.may_have_applied

    assert calendar_events(stack.config, tenant.tenant_id) == []
    assert mails_to(stack.config.maildir, action.recipient) == []


async def test_two_executors_racing_for_one_slot_book_it_once(stack, tools) -> None:  # type: ignore[no-untyped-def]
    # two tools are two executor replicas: no lock in common, only the CalDAV server between them
    tenant = tenant_config()
    racers = [
        (make(tools, stack.config), meeting(tenant, TEN_AM)),
        (make(tools, stack.config), meeting(tenant, TEN_AM)),
    ]

    async def book(tool: MeetingTool, action: ActionProposed) -> str:
        for _ in range(20):  # as the runner does: a contended slot is tried again, after a jittered pause
            try:
                await tool.run(action, tenant)
                return "booked"
            except ToolError as exc:
                if exc.code != "slot_contended":
                    return exc.code
            await asyncio.sleep(random.uniform(0.01, 0.2))
        return "still contended"

    outcomes = await asyncio.gather(*(book(tool, action) for tool, action in racers))
    assert sorted(outcomes) == ["booked", "slot_busy"]
    assert len(calendar_events(stack.config, tenant.tenant_id)) == 1
    invites = [len(mails_to(stack.config.maildir, str(action.recipient))) for _, action in racers]
    assert sorted(invites) == [0, 1]
