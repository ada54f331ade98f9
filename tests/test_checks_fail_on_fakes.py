"""TLS checks seen failing against tiny local servers that break one rule each (no Docker).

Weaknesses Postfix cannot even be configured into (a suite without forward secrecy with an
ECDSA key, STARTTLS command injection) are shown here, over real TLS on 127.0.0.1.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID

from harness.checks import Status, attacks, tls_quality, transport
from harness.checks.base import Check
from harness.policy import RFC8314, Tls, service_policy
from harness.runner import run_one
from harness.target import Account, Target
from stack.pki import PkiFiles, ensure_pki

HOST = "mail.example.test"
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def check(module: object, name: str) -> Check:
    return next(c for c in module.CHECKS if c.name == name)  # type: ignore[attr-defined]


def target_at(port: int, ca: Path, tls: Tls) -> Target:
    """Every service on the fake's port; the one under test gets the policy's TLS mode."""
    return Target(
        host="127.0.0.1",
        server_name=HOST,
        mail_domain="example.test",
        ca_file=ca,
        services={n: service_policy(n, port, tls if n == "submission" else None) for n in RFC8314},
        users=(Account("a@example.test", "p"), Account("b@example.test", "q")),
    )


def smtp_server(*, starttls: ssl.SSLContext | None = None, refuse_starttls: bool = False) -> Handler:
    """Minimal ESMTP: greeting, EHLO, optional STARTTLS, NOOP, QUIT. After STARTTLS it goes on
    reading the same buffered stream, i.e. it executes commands pipelined before TLS."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 fake ESMTP\r\n")
        secure = False
        while line := await reader.readline():
            verb = line.strip().split(b" ")[0].upper()
            if verb == b"EHLO":
                offer = b"250-fake\r\n250-STARTTLS\r\n" if starttls and not secure else b"250-fake\r\n"
                writer.write(offer + b"250 8BITMIME\r\n")
            elif verb == b"STARTTLS" and refuse_starttls:
                writer.write(b"454 4.7.0 TLS not available\r\n")
            elif verb == b"STARTTLS" and starttls:
                writer.write(b"220 go ahead\r\n")
                await writer.drain()
                await writer.start_tls(starttls)
                secure = True
            elif verb == b"QUIT":
                writer.write(b"221 bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"250 ok\r\n")
            await writer.drain()
        writer.close()

    return handle


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    directory = tmp_path_factory.mktemp("pki")
    ensure_pki(directory, HOST)
    return PkiFiles(directory)


def server_context(pki: PkiFiles) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki.server_chain, pki.server_key)
    return context


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[int]]]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler, tls: ssl.SSLContext | None = None) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        return server.sockets[0].getsockname()[1]

    yield start
    for server in servers:
        server.close()


async def test_tls_first_fails_on_a_cleartext_greeting(serve, pki: PkiFiles) -> None:  # type: ignore[no-untyped-def]
    port = await serve(smtp_server())
    target = target_at(port, pki.root_cert, Tls.IMPLICIT)
    result = await run_one(target, check(transport, "tls-first"), target.services["submission"])
    assert result.status is Status.FAIL and "cleartext" in result.reason


async def test_starttls_fails_when_advertised_but_refused(serve, pki: PkiFiles) -> None:  # type: ignore[no-untyped-def]
    port = await serve(smtp_server(starttls=server_context(pki), refuse_starttls=True))
    target = target_at(port, pki.root_cert, Tls.STARTTLS)
    result = await run_one(target, check(transport, "starttls"), target.services["submission"])
    assert result.status is Status.FAIL and "454" in result.reason


async def test_starttls_injection_is_caught(serve, pki: PkiFiles) -> None:  # type: ignore[no-untyped-def]
    port = await serve(smtp_server(starttls=server_context(pki)))
    target = target_at(port, pki.root_cert, Tls.STARTTLS)
    result = await run_one(target, check(attacks, "starttls-injection"), target.services["submission"])
    assert result.status is Status.FAIL and "inside TLS" in result.reason, result


async def test_certificate_for_another_name_fails(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    ensure_pki(tmp_path, "other.example.test", extra_names=())
    other = PkiFiles(tmp_path)
    port = await serve(smtp_server(), server_context(other))
    target = target_at(port, other.root_cert, Tls.IMPLICIT)
    result = await run_one(target, check(tls_quality, "certificate"), target.services["submission"])
    assert result.status is Status.FAIL and "does not verify for mail.example.test" in result.reason


async def test_expired_certificate_fails(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=400)
    ensure_pki(tmp_path, HOST, now=long_ago)  # leaf valid for 365 days from then: expired
    old = PkiFiles(tmp_path)
    port = await serve(smtp_server(), server_context(old))
    target = target_at(port, old.root_cert, Tls.IMPLICIT)
    result = await run_one(target, check(tls_quality, "certificate"), target.services["submission"])
    assert result.status is Status.FAIL and "expired" in result.reason.lower(), result.reason


def rsa_context(tmp_path: Path, ciphers: str) -> tuple[ssl.SSLContext, Path]:
    """A self-signed RSA server limited to TLS 1.2 and the given suites."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, HOST)])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(HOST)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / "rsa.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file = tmp_path / "rsa.key"
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    context.load_cert_chain(pem, key_file)
    return context, pem


async def test_forward_secrecy_fails_on_rsa_key_exchange(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    context, ca = rsa_context(tmp_path, "AES128-GCM-SHA256:@SECLEVEL=0")
    port = await serve(smtp_server(), context)
    target = target_at(port, ca, Tls.IMPLICIT)
    result = await run_one(target, check(tls_quality, "forward-secrecy"), target.services["submission"])
    assert result.status is Status.FAIL and "AES128-GCM-SHA256" in result.reason, result.reason


async def test_forward_secrecy_passes_on_ecdhe_only(serve, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    context, ca = rsa_context(tmp_path, "ECDHE-RSA-AES128-GCM-SHA256")
    port = await serve(smtp_server(), context)
    target = target_at(port, ca, Tls.IMPLICIT)
    result = await run_one(target, check(tls_quality, "forward-secrecy"), target.services["submission"])
    assert result.status is Status.PASS, result.reason
