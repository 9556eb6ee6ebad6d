"""send_email's adapter: SMTP (STARTTLS and auth when configured) with aiosmtplib."""

from __future__ import annotations

from email.message import EmailMessage

import aiosmtplib

from herald_executor.settings import Settings


class PermanentSendError(Exception):
    """The server refused the message for good (5xx): not retried."""


class SmtpSender:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def send(self, message: EmailMessage) -> str:
        s = self.settings
        try:
            response = await aiosmtplib.send(
                message, hostname=s.smtp_host, port=s.smtp_port, start_tls=s.smtp_starttls,
                username=s.smtp_username, password=s.smtp_password, timeout=s.smtp_timeout_seconds,
            )
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentSendError(f"{exc.code} {exc.message}") from exc
            raise
        return str(response[1])
