"""send_email's adapter: SMTP (STARTTLS or implicit TLS, and auth, when configured) over a small pool of connections.

TLS always verifies the server's certificate and that it is valid for `smtp_host`, against the system's CAs or
`smtp_tls_ca_file`; there is no switch to turn that off, so a misconfigured relay fails loudly instead of
silently receiving mail (and the password) from whoever answers.

Failures are told apart by when they happen, because that decides whether a retry is safe:
- `NotSentError`: nothing reached the server (connect, greeting, a 4xx at login, a stale pooled
  connection): safe to try again later;
- `SessionRefusedError`: the session could not be set up as configured — the TLS handshake or the
  server's certificate failed (`smtp_tls_failed`), or the login was refused or is impossible
  (`smtp_auth_failed`, also a 530 "authentication required" at MAIL FROM): nothing was handed over,
  and trying again with the same settings fails the same way, so it is permanent — each action fails
  at once, with a code that says what to fix, instead of retrying into a backlog;
- `PermanentSendError`: the server refused the message (5xx): not retried;
- `DeferredError`: the server answered 4xx (try later): it did not take the message;
- anything else during the mail transaction: the outcome is unknown, and the caller treats the
  action as in doubt rather than risk a second email.

The password is only handed to aiosmtplib's login; no message built here contains it.

`EmailTool` is send_email's adapter (`herald_executor.logic.ToolAdapter`) over the sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from email.message import EmailMessage
from typing import Literal

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


class SessionRefusedError(Exception):
    """TLS or the login failed before any message was handed over; the same settings will fail again."""

    def __init__(self, code: Literal["smtp_tls_failed", "smtp_auth_failed"], message: str) -> None:
        super().__init__(message)
        self.code = code


def _tls_refused(exc: BaseException | None) -> bool:
    """A handshake that failed on its merits (certificate, name, protocol) rather than a peer that hung up in
    the middle of it (`SSLEOFError`, as an overloaded server may): only the latter is worth another try."""
    return isinstance(exc, ssl.SSLError) and not isinstance(exc, ssl.SSLEOFError)


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """The client context for smtp_tls / smtp_starttls: certificates and host names verified, TLS 1.2 or later;
    the CAs of `smtp_tls_ca_file` when set (only those), else the system's."""
    if not (settings.smtp_tls or settings.smtp_starttls):
        return None
    ca_file = str(settings.smtp_tls_ca_file) if settings.smtp_tls_ca_file is not None else None
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class SmtpSender:
    def __init__(self, settings: Settings, pool_size: int = 8) -> None:
        self.settings = settings
        self._tls = tls_context(settings)  # built once: an unreadable CA bundle stops the executor at start
        self._idle: asyncio.LifoQueue[tuple[aiosmtplib.SMTP, float]] = asyncio.LifoQueue()
        self._slots = asyncio.Semaphore(pool_size)

    async def _connect(self) -> aiosmtplib.SMTP:
        """A new session, set up step by step (connect, STARTTLS, login) so that a refusal is told apart from a
        server that could not be reached; neither has handed anything over."""
        s = self.settings
        where = f"{s.smtp_host}:{s.smtp_port}"
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_tls,
            start_tls=False,  # done below; left to aiosmtplib it would also upgrade opportunistically
            tls_context=self._tls,
            timeout=s.smtp_timeout_seconds,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPConnectError as exc:
            if _tls_refused(exc.__cause__):
                raise SessionRefusedError("smtp_tls_failed", f"TLS with {where} failed: {exc.__cause__}") from exc
            raise
        try:
            if s.smtp_starttls:
                await self._start_tls(client, where)
            if s.smtp_username is not None:
                await self._login(client, s.smtp_username, where)
        except BaseException:
            client.close()
            raise
        return client

    async def _start_tls(self, client: aiosmtplib.SMTP, where: str) -> None:
        await client.ehlo()
        if not client.supports_extension("starttls"):
            # going on in clear would hand the message (and the login) to anyone on the path
            raise SessionRefusedError("smtp_tls_failed", f"{where} does not offer STARTTLS")
        try:
            await client.starttls()
        except ssl.SSLError as exc:
            if _tls_refused(exc):
                raise SessionRefusedError("smtp_tls_failed", f"STARTTLS with {where} failed: {exc}") from exc
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise SessionRefusedError(
                    "smtp_tls_failed", f"{where} refused STARTTLS: {exc.code} {exc.message}"
                ) from exc
            raise

    async def _login(self, client: aiosmtplib.SMTP, username: str, where: str) -> None:
        try:
            password = await asyncio.to_thread(self.settings.smtp_login_password)
        except OSError as exc:  # the secret's file went away after start; its content is never quoted
            raise SessionRefusedError(
                "smtp_auth_failed", f"the SMTP password file could not be read: {exc.strerror}"
            ) from exc
        try:
            await client.login(username, password or "")
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:  # 535 credentials invalid, 534/538 mechanism or encryption needed
                raise SessionRefusedError(
                    "smtp_auth_failed", f"{where} refused the login as {username!r}: {exc.code} {exc.message}"
                ) from exc
            raise  # 454 and the like: the server's trouble, not the credentials'
        except (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError):
            raise
        except aiosmtplib.SMTPException as exc:  # AUTH not offered (e.g. only over TLS) or no common mechanism
            raise SessionRefusedError("smtp_auth_failed", f"cannot log in to {where} as {username!r}: {exc}") from exc

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
                if exc.code == 530:  # authentication (or TLS) required: no message of this session will pass
                    with contextlib.suppress(Exception):
                        client.close()
                    where = f"{self.settings.smtp_host}:{self.settings.smtp_port}"
                    raise SessionRefusedError(
                        "smtp_auth_failed", f"{where} requires a login: {exc.code} {exc.message}"
                    ) from exc
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
        """`send`, its failures typed for the tool runner: not taken (retryable, nothing happened), refused for
        good (permanent: `smtp_rejected`), or no session as configured (permanent, nothing happened:
        `smtp_tls_failed`, `smtp_auth_failed`); anything else escapes as a cut-off call, for `reconcile` to judge."""
        try:
            return await self.send(message)
        except (NotSentError, DeferredError) as exc:
            raise ToolError(FailureKind.RETRYABLE, "smtp_unavailable", str(exc)) from exc
        except PermanentSendError as exc:
            raise ToolError(FailureKind.PERMANENT, "smtp_rejected", str(exc)) from exc
        except SessionRefusedError as exc:
            raise ToolError(FailureKind.PERMANENT, exc.code, f"{exc}; nothing was sent") from exc

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
