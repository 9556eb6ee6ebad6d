"""send_email's adapter: SMTP (STARTTLS and auth when configured) over a small pool of connections.

Failures are told apart by when they happen, because that decides whether a retry is safe:
- `NotSentError`: nothing reached the server (connect, greeting, login, a stale pooled connection):
  safe to try again later;
- `PermanentSendError`: the server refused the message (5xx): not retried;
- `DeferredError`: the server answered 4xx (try later): it did not take the message;
- anything else during the mail transaction: the outcome is unknown, and the caller treats the
  action as in doubt rather than risk a second email.

`EmailTool` is send_email's adapter (`herald_executor.logic.ToolAdapter`) over the sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from email.message import EmailMessage

import aiosmtplib

from herald_core.contracts import ActionProposed, FailureKind
from herald_core.tenants import TenantConfig
from herald_core.tools import SendEmailOutput
from herald_executor.logic import Reconciled, ToolError, message_id, render_email
from herald_executor.settings import Settings

IDLE_CHECK_SECONDS = 5.0


class NotSentError(Exception):
    """Nothing was handed to the SMTP server; the send can be retried."""


class PermanentSendError(Exception):
    """The server refused the message for good (5xx): not retried."""


class DeferredError(Exception):
    """The server answered 4xx: it did not take the message, and may later."""


class SmtpSender:
    def __init__(self, settings: Settings, pool_size: int = 8) -> None:
        self.settings = settings
        self._idle: asyncio.LifoQueue[tuple[aiosmtplib.SMTP, float]] = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(pool_size)

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            start_tls=s.smtp_starttls,
            username=s.smtp_username,
            password=s.smtp_password,
            timeout=s.smtp_timeout_seconds,
        )
        await client.connect()
        return client

    async def _checkout(self) -> aiosmtplib.SMTP:
        while not self._idle.empty():
            client, last_used = self._idle.get_nowait()
            if time.monotonic() - last_used < IDLE_CHECK_SECONDS:
                return client
            try:
                await client.noop()
                return client
            except aiosmtplib.SMTPException:
                with contextlib.suppress(Exception):
                    client.close()
        return await self._connect()

    async def send(self, message: EmailMessage) -> str:
        async with self._slots:
            try:
                client = await self._checkout()
            except (OSError, aiosmtplib.SMTPException) as exc:
                raise NotSentError(f"could not reach the SMTP server: {exc!r}") from exc
            try:
                _, reply = await client.send_message(message)
            except aiosmtplib.SMTPRecipientsRefused as exc:
                self._idle.put_nowait((client, time.monotonic()))
                raise PermanentSendError(f"recipient refused: {exc.recipients}") from exc
            except aiosmtplib.SMTPResponseException as exc:
                if 500 <= exc.code < 600:
                    self._idle.put_nowait((client, time.monotonic()))
                    raise PermanentSendError(f"{exc.code} {exc.message}") from exc
                if 400 <= exc.code < 500:
                    with contextlib.suppress(Exception):
                        client.close()
                    raise DeferredError(f"{exc.code} {exc.message}") from exc
                with contextlib.suppress(Exception):
                    client.close()
                raise
            except BaseException:
                with contextlib.suppress(Exception):
                    client.close()
                raise
            self._idle.put_nowait((client, time.monotonic()))
            return str(reply)

    async def deliver(self, message: EmailMessage) -> str:
        """`send`, its failures typed for the tool runner: not taken (retryable, nothing happened) or refused for
        good (permanent); anything else escapes as a cut-off call, for `reconcile` to judge."""
        try:
            return await self.send(message)
        except (NotSentError, DeferredError) as exc:
            raise ToolError(FailureKind.RETRYABLE, "smtp_unavailable", str(exc)) from exc
        except PermanentSendError as exc:
            raise ToolError(FailureKind.PERMANENT, "smtp_rejected", str(exc)) from exc

    async def close(self) -> None:
        while not self._idle.empty():
            client, _ = self._idle.get_nowait()
            with contextlib.suppress(Exception):
                await client.quit()


class EmailTool:
    """send_email: the approved draft rendered (plain + HTML, List-Unsubscribe) and handed to SMTP once."""

    tool = "send_email"

    def __init__(self, settings: Settings, sender: SmtpSender) -> None:
        self.settings = settings
        self.sender = sender

    async def run(self, action: ActionProposed, tenant: TenantConfig) -> SendEmailOutput:
        email = render_email(
            action,
            sender_name=tenant.sender.name,
            sender_address=str(tenant.sender.address),
            unsubscribe_url=tenant.unsubscribe_url,
            domain=self.settings.message_id_domain,
        )
        reply = await self.sender.deliver(email)
        return SendEmailOutput(
            message_id=message_id(action.action_id, self.settings.message_id_domain), smtp_reply=reply
        )

    async def reconcile(self, action: ActionProposed, tenant: TenantConfig) -> tuple[Reconciled, None]:
        # SMTP cannot be asked whether it took a message: an interrupted send is for a human to check
        return Reconciled.UNKNOWN, None
