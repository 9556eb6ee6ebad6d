"""A real SMTP server on loopback that delivers every message into a Maildir.

It speaks SMTP (aiosmtpd) so the executor's SMTP client is exercised for real, and it keeps
what it receives where the tests, the demo and a person can read it back
(`mailbox.Maildir`, one file per message, the envelope recipients in `X-Herald-Rcpt-To`).

`make up` runs it plain and open. For trying TLS and auth (and for the tests of the executor's
SMTP settings) it can also offer STARTTLS with a given certificate (`--tls-cert/--tls-key`), or
speak TLS from the first byte (`--implicit-tls`, as on port 465), and require a login
(`--auth-user/--auth-password-file`, AUTH PLAIN or LOGIN, only over TLS; MAIL FROM without it
is answered 530). A message that came over TLS carries `X-Herald-TLS` (the protocol version)
and one from a logged-in client `X-Herald-Auth` (the user), so a reader can tell how it arrived.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import mailbox
import signal
import ssl
from email import message_from_bytes
from email.policy import SMTP
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session


class MaildirHandler:
    def __init__(self, maildir: Path) -> None:
        self.maildir = mailbox.Maildir(maildir, create=True)

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        message = message_from_bytes(content, policy=SMTP)
        message["X-Herald-Mail-From"] = envelope.mail_from or ""
        message["X-Herald-Rcpt-To"] = ", ".join(envelope.rcpt_tos)
        # the transport after STARTTLS, or the listener's own for implicit TLS
        tls = server.transport.get_extra_info("ssl_object") if server.transport is not None else None
        if tls is not None:
            message["X-Herald-TLS"] = tls.version() or "unknown"
        if session.authenticated:
            message["X-Herald-Auth"] = str(session.auth_data)
        # Maildir writes to tmp/ then renames into new/: a reader never sees half a message
        await asyncio.to_thread(self.maildir.add, message)
        return "250 Message accepted for delivery"


class OneUser:
    """aiosmtpd's `authenticator` for one user and password (AUTH PLAIN and LOGIN)."""

    def __init__(self, user: str, password: str) -> None:
        self.user = user.encode()
        self.password = password.encode()

    def __call__(self, server: Any, session: Session, envelope: Envelope, mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        # both compared, always, so the time taken does not say which one was wrong
        user_ok = hmac.compare_digest(auth_data.login, self.user)
        password_ok = hmac.compare_digest(auth_data.password, self.password)
        if user_ok and password_ok:
            return AuthResult(success=True, auth_data=self.user.decode())
        return AuthResult(success=False, handled=False)


def read_password(path: Path) -> str:
    """A password file's content without one trailing newline, as the executor reads its own."""
    return path.read_text().removesuffix("\n").removesuffix("\r")


def server_tls_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def build_controller(
    maildir: Path,
    *,
    host: str = "127.0.0.1",
    port: int = 10025,
    tls_cert: Path | None = None,
    tls_key: Path | None = None,
    implicit_tls: bool = False,
    auth_user: str | None = None,
    auth_password: str | None = None,
) -> Controller:
    """The server as configured, not yet started (`Controller.start()` listens in a thread of its own)."""
    options: dict[str, Any] = {}
    tls = server_tls_context(tls_cert, tls_key) if tls_cert is not None and tls_key is not None else None
    if tls is not None and not implicit_tls:
        options["tls_context"] = tls
    if auth_user is not None and auth_password is not None:
        options["authenticator"] = OneUser(auth_user, auth_password)
        options["auth_required"] = True
        # aiosmtpd only counts a STARTTLS upgrade as TLS (aio-libs/aiosmtpd#281): on an implicit-TLS listener
        # every byte is already encrypted, so its check is turned off there and nowhere else
        options["auth_require_tls"] = not implicit_tls
    return Controller(
        MaildirHandler(maildir),
        hostname=host,
        port=port,
        ssl_context=tls if implicit_tls else None,
        **options,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=10025)
    parser.add_argument("--maildir", type=Path, required=True)
    parser.add_argument("--tls-cert", type=Path, help="PEM certificate (chain) to offer STARTTLS with")
    parser.add_argument("--tls-key", type=Path, help="its PEM private key")
    parser.add_argument("--implicit-tls", action="store_true", help="TLS from the first byte instead of STARTTLS")
    parser.add_argument("--auth-user", help="require AUTH PLAIN/LOGIN as this user (over TLS only)")
    parser.add_argument("--auth-password-file", type=Path, help="file holding that user's password")
    args = parser.parse_args()
    if (args.tls_cert is None) != (args.tls_key is None):
        parser.error("--tls-cert and --tls-key go together")
    if args.implicit_tls and args.tls_cert is None:
        parser.error("--implicit-tls needs --tls-cert and --tls-key")
    if (args.auth_user is None) != (args.auth_password_file is None):
        parser.error("--auth-user and --auth-password-file go together")
    if args.auth_user is not None and args.tls_cert is None:
        parser.error("--auth-user needs --tls-cert/--tls-key: a password is only taken over TLS")
    controller = build_controller(
        args.maildir,
        host=args.host,
        port=args.port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        implicit_tls=args.implicit_tls,
        auth_user=args.auth_user,
        auth_password=read_password(args.auth_password_file) if args.auth_password_file is not None else None,
    )
    controller.start()
    mode = "implicit TLS" if args.implicit_tls else "STARTTLS" if args.tls_cert is not None else "plain"
    login = f", login required as {args.auth_user}" if args.auth_user is not None else ""
    print(f"smtp listening on {args.host}:{args.port} ({mode}{login}), delivering to {args.maildir}", flush=True)
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
