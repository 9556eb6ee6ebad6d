"""A real SMTP server on loopback that delivers every message into a Maildir.

It speaks SMTP (aiosmtpd) so the executor's SMTP client is exercised for real, and it keeps
what it receives where the tests, the demo and a person can read it back
(`mailbox.Maildir`, one file per message, the envelope recipients in `X-Herald-Rcpt-To`).
"""

from __future__ import annotations

import argparse
import asyncio
import mailbox
import signal
from email import message_from_bytes
from email.policy import SMTP
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import Envelope, Session


class MaildirHandler:
    def __init__(self, maildir: Path) -> None:
        self.maildir = mailbox.Maildir(maildir, create=True)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=SMTP)
        message["X-Herald-Mail-From"] = envelope.mail_from or ""
        message["X-Herald-Rcpt-To"] = ", ".join(envelope.rcpt_tos)
        # Maildir writes to tmp/ then renames into new/: a reader never sees half a message
        await asyncio.to_thread(self.maildir.add, message)
        return "250 Message accepted for delivery"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10025)
    parser.add_argument("--maildir", type=Path, required=True)
    args = parser.parse_args()
    controller = Controller(MaildirHandler(args.maildir), hostname=args.host, port=args.port)
    controller.start()
    print(f"smtp listening on {args.host}:{args.port}, delivering to {args.maildir}", flush=True)
    stop = asyncio.Event()

    async def wait() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()

    try:
        asyncio.run(wait())
    finally:
        controller.stop()


if __name__ == "__main__":
    main()
