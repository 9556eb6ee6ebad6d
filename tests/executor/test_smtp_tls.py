"""send_email over TLS with a login, against the stack's own SMTP server (herald_stack.smtp_server, run as a process
on a free loopback port, delivering into a Maildir of its own) with a throwaway CA made here: STARTTLS and implicit
TLS deliver once over an encrypted, logged-in session; a certificate the executor does not trust, one for another
name, a wrong password, and a plain session with a server that wants a login all fail typed and permanent, having
delivered nothing and without quoting the password; settings that cannot both hold are refused at start."""

from __future__ import annotations

import ipaddress
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from pydantic import ValidationError

from herald_core.contracts import ActionProposed, FailureKind
from herald_core.tenants import TenantConfig
from herald_executor.adapters.smtp import EmailTool, SmtpSender
from herald_executor.logic import ToolError
from herald_executor.settings import Settings
from support import acme_tenant, free_port, mails_to, tool_action, tool_input

pytestmark = [pytest.mark.smtp]

Mode = Literal["starttls", "implicit"]
USER = "herald-relay"
PASSWORD = f"pw-{secrets.token_urlsafe(12)}"


# ---- a throwaway CA and server certificates, as an internal PKI would issue them


@dataclass(frozen=True)
class Pki:
    ca: Path
    cert: Path  # for 127.0.0.1 and localhost
    key: Path
    other_cert: Path  # valid, from the same CA, but for another name
    other_key: Path


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> Path:
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def _issue(
    ca_key: ec.EllipticCurvePrivateKey, ca_cert: x509.Certificate, names: list[x509.GeneralName], directory: Path
) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("herald test smtp"))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    stem = secrets.token_hex(4)
    (directory / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return directory / f"{stem}.crt", _write_key(key, directory / f"{stem}.key")


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.now(UTC)
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(_name("Herald test CA"))
        .issuer_name(_name("Herald test CA"))
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    ca = directory / "ca.pem"
    ca.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    loopback = [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
    cert, key = _issue(ca_key, ca_cert, loopback, directory)
    other_cert, other_key = _issue(ca_key, ca_cert, [x509.DNSName("mail.elsewhere.example")], directory)
    return Pki(ca, cert, key, other_cert, other_key)


# ---- the stack's SMTP server as a process


@dataclass
class SmtpServer:
    port: int
    maildir: Path
    process: subprocess.Popen[bytes]
    log: Path

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_server(directory: Path, *args: str) -> SmtpServer:
    directory.mkdir(parents=True, exist_ok=True)
    port, maildir, log = free_port(), directory / "mail", directory / "smtp.log"
    command = [sys.executable, "-m", "herald_stack.smtp_server", "--port", str(port), "--maildir", str(maildir)]
    with log.open("wb") as out:
        process = subprocess.Popen([*command, *args], stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    server = SmtpServer(port, maildir, process, log)
    deadline = time.monotonic() + 30
    while b"smtp listening on" not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            server.stop()
            raise AssertionError(f"the SMTP server did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return server


@pytest.fixture(scope="module")
def password_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("secret") / "password"
    path.write_text(PASSWORD + "\n")  # as `echo … > file` or a secret mount leaves it
    os.chmod(path, 0o600)
    return path


@pytest.fixture(scope="module")
def servers(
    pki: Pki, password_file: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Mode, SmtpServer]]:
    """A STARTTLS server and an implicit-TLS one, both requiring the login, with the certificate for 127.0.0.1."""
    base = tmp_path_factory.mktemp("smtp")
    tls = ["--tls-cert", str(pki.cert), "--tls-key", str(pki.key)]
    login = ["--auth-user", USER, "--auth-password-file", str(password_file)]
    started: dict[Mode, SmtpServer] = {}
    try:
        started["starttls"] = start_server(base / "starttls", *tls, *login)
        started["implicit"] = start_server(base / "implicit", *tls, "--implicit-tls", *login)
        yield started
    finally:
        for server in started.values():
            server.stop()


# ---- the executor's tool, as the executor builds it


def settings_for(server: SmtpServer, mode: Mode | None, **overrides: object) -> Settings:
    fields: dict[str, object] = {
        "smtp_host": "127.0.0.1",
        "smtp_port": server.port,
        "smtp_starttls": mode == "starttls",
        "smtp_tls": mode == "implicit",
        "smtp_timeout_seconds": 5.0,
        **overrides,
    }
    settings: Settings = Settings.model_validate(fields)
    return settings


def tenant_config() -> TenantConfig:
    return acme_tenant(f"tls{secrets.token_hex(4)}")


def an_email(tenant: TenantConfig) -> tuple[ActionProposed, str]:
    contact_id = f"c{secrets.token_hex(4)}"
    action = tool_action(tenant.tenant_id, "send_email", tool_input("send_email", contact_id), contact_id=contact_id)
    return action, f"{contact_id}@buyers.example"


@pytest.fixture
async def senders() -> AsyncIterator[list[SmtpSender]]:
    made: list[SmtpSender] = []
    yield made
    for sender in made:
        await sender.close()


def email_tool(senders: list[SmtpSender], settings: Settings) -> EmailTool:
    sender = SmtpSender(settings, pool_size=1)
    senders.append(sender)
    return EmailTool(settings, sender)


async def refused(tool: EmailTool, action: ActionProposed, tenant: TenantConfig) -> ToolError:
    with pytest.raises(ToolError) as caught:
        await tool.run(action, tenant)
    error = caught.value
    assert not error.may_have_applied
    told: list[str] = [error.failure.message]
    cause: BaseException | None = error
    while cause is not None:  # what a log line or the audit could carry, down the whole chain
        told += [str(cause), repr(cause)]
        cause = cause.__cause__ or cause.__context__
    assert not any(PASSWORD in text for text in told)
    return error


# ---- the tests


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
async def test_an_email_over_tls_with_a_login_arrives_once_encrypted_and_logged_in(
    mode: Mode, servers: dict[Mode, SmtpServer], pki: Pki, password_file: Path, senders: list[SmtpSender]
) -> None:
    server = servers[mode]
    settings = settings_for(server, mode, smtp_tls_ca_file=pki.ca, smtp_username=USER, smtp_password_file=password_file)
    tool, tenant = email_tool(senders, settings), tenant_config()
    action, recipient = an_email(tenant)

    output = await tool.run(action, tenant)

    (delivered,) = mails_to(server.maildir, recipient)
    assert delivered["Message-ID"] == output.message_id
    assert delivered["X-Herald-TLS"] in ("TLSv1.2", "TLSv1.3")  # the server read it off an encrypted session
    assert delivered["X-Herald-Auth"] == USER  # after a login it accepted


async def test_the_password_file_wins_over_the_password_setting(
    servers: dict[Mode, SmtpServer], pki: Pki, password_file: Path, senders: list[SmtpSender]
) -> None:
    server = servers["starttls"]
    settings = settings_for(
        server,
        "starttls",
        smtp_tls_ca_file=pki.ca,
        smtp_username=USER,
        smtp_password="a-stale-password",
        smtp_password_file=password_file,
    )
    tool, tenant = email_tool(senders, settings), tenant_config()
    action, recipient = an_email(tenant)
    await tool.run(action, tenant)
    assert len(mails_to(server.maildir, recipient)) == 1


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
async def test_a_certificate_the_system_store_does_not_trust_is_refused_and_nothing_is_sent(
    mode: Mode, servers: dict[Mode, SmtpServer], password_file: Path, senders: list[SmtpSender]
) -> None:
    server = servers[mode]
    settings = settings_for(server, mode, smtp_username=USER, smtp_password_file=password_file)  # no CA file
    tool, tenant = email_tool(senders, settings), tenant_config()
    action, recipient = an_email(tenant)

    error = await refused(tool, action, tenant)

    assert (error.kind, error.code) == (FailureKind.PERMANENT, "smtp_tls_failed")
    assert "certificate verify failed" in error.failure.message
    assert mails_to(server.maildir, recipient) == []


async def test_a_certificate_for_another_name_is_refused_even_from_the_trusted_ca(
    pki: Pki, password_file: Path, tmp_path: Path, senders: list[SmtpSender]
) -> None:
    server = start_server(tmp_path / "smtp", "--tls-cert", str(pki.other_cert), "--tls-key", str(pki.other_key))
    try:
        settings = settings_for(server, "starttls", smtp_tls_ca_file=pki.ca)
        tool, tenant = email_tool(senders, settings), tenant_config()
        action, recipient = an_email(tenant)

        error = await refused(tool, action, tenant)

        assert (error.kind, error.code) == (FailureKind.PERMANENT, "smtp_tls_failed")
        assert "mismatch" in error.failure.message  # the name, not the chain, was wrong
        assert mails_to(server.maildir, recipient) == []
    finally:
        server.stop()


@pytest.mark.parametrize("mode", ["starttls", "implicit"])
async def test_a_wrong_password_is_refused_permanently_without_quoting_it_and_nothing_is_sent(
    mode: Mode, servers: dict[Mode, SmtpServer], pki: Pki, tmp_path: Path, senders: list[SmtpSender]
) -> None:
    server = servers[mode]
    wrong = tmp_path / "password"
    wrong.write_text(PASSWORD[::-1])
    settings = settings_for(server, mode, smtp_tls_ca_file=pki.ca, smtp_username=USER, smtp_password_file=wrong)
    tool, tenant = email_tool(senders, settings), tenant_config()
    action, recipient = an_email(tenant)

    error = await refused(tool, action, tenant)

    assert (error.kind, error.code) == (FailureKind.PERMANENT, "smtp_auth_failed")
    assert "535" in error.failure.message and USER in error.failure.message
    assert PASSWORD[::-1] not in error.failure.message
    assert mails_to(server.maildir, recipient) == []


async def test_a_plain_session_with_a_server_that_wants_a_login_is_refused_and_nothing_is_sent(
    servers: dict[Mode, SmtpServer], password_file: Path, senders: list[SmtpSender]
) -> None:
    server = servers["starttls"]
    tenant = tenant_config()

    # no login configured: MAIL FROM is answered 530
    anonymous = email_tool(senders, settings_for(server, None))
    action, recipient = an_email(tenant)
    error = await refused(anonymous, action, tenant)
    assert (error.kind, error.code) == (FailureKind.PERMANENT, "smtp_auth_failed")
    assert "530" in error.failure.message
    assert mails_to(server.maildir, recipient) == []

    # a login configured but no TLS: the server does not offer AUTH in clear, so the password is never sent
    in_clear = email_tool(senders, settings_for(server, None, smtp_username=USER, smtp_password_file=password_file))
    action, recipient = an_email(tenant)
    error = await refused(in_clear, action, tenant)
    assert (error.kind, error.code) == (FailureKind.PERMANENT, "smtp_auth_failed")
    assert mails_to(server.maildir, recipient) == []


def test_settings_refuse_both_tls_modes_and_a_ca_without_tls_and_never_show_the_password(pki: Pki) -> None:
    with pytest.raises(ValidationError, match="mutually exclusive"):
        Settings(smtp_tls=True, smtp_starttls=True)
    with pytest.raises(ValidationError, match="TLS would not be used"):
        Settings(smtp_tls_ca_file=pki.ca)
    settings = Settings(smtp_starttls=True, smtp_username=USER, smtp_password=PASSWORD)
    assert PASSWORD not in repr(settings) and PASSWORD not in str(settings.model_dump())
    assert settings.smtp_login_password() == PASSWORD
