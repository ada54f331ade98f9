"""Raw probes of what a port does before TLS: greetings, capabilities, refused AUTH.

Each probe returns what it observed (with the dialogue); the tests decide what is right.
Credentials sent in cleartext by these probes are deliberately wrong ones: a server that
answers "authentication failed" rather than "TLS required" has evaluated them, which is
the failure being looked for, and no real secret ever crosses the wire unencrypted.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
from dataclasses import dataclass

from harness.dialogue import ImapReply, SmtpReply, greeting_capabilities, imap_command, read_smtp_reply, smtp_command
from harness.pop3 import POP3Client, POP3Error
from harness.stream import LineStream
from harness.target import Target

CLEARTEXT_WAIT_S = 1.0
PROBE_DOMAIN = "probe.invalid"


def decoy_credentials(address: str) -> tuple[str, str]:
    """A real-looking user with a password nobody has."""
    return address, "wrong-" + secrets.token_hex(8)


@dataclass(frozen=True)
class CleartextResult:
    """What a cleartext client saw on a port."""

    refused: bool  # connection refused outright
    greeting: bytes  # bytes the server sent unprompted (b'' if none)
    reply: bytes  # bytes sent after the client spoke cleartext first
    hung_up: bool  # the server closed the connection during the probe
    transcript: str

    @property
    def closed(self) -> bool:
        """Nothing listens: refused, or (through a port proxy) accepted and hung up without a byte."""
        return self.refused or (self.hung_up and not self.greeting and not self.reply)


async def cleartext_client(target: Target, service: str, hello: bytes) -> CleartextResult:
    """Connect without TLS, wait for a greeting, then speak cleartext and read the answer."""
    port = target.port(service)
    try:
        stream = await LineStream.open(target.host, port, timeout=CLEARTEXT_WAIT_S)
    except ConnectionRefusedError:
        return CleartextResult(True, b"", b"", False, f"-- connect to {port}: refused")
    async with stream:
        greeting, hung_up = await _bytes_within(stream, "wait for an unprompted greeting")
        reply = b""
        if not greeting and not hung_up:
            try:
                await stream.write(hello)
            except (ConnectionError, OSError):
                hung_up = True
            else:
                reply, hung_up = await _bytes_within(stream, "read reply to cleartext")
        for label, data in (("unprompted", greeting), ("reply", reply)):
            if data:
                stream.transcript.note(f"{label}: {data[:80]!r}")
        if hung_up:
            stream.transcript.note("server hung up")
        return CleartextResult(False, greeting, reply, hung_up, str(stream.transcript))


async def _bytes_within(stream: LineStream, step: str) -> tuple[bytes, bool]:
    """Bytes that arrive within the wait, and whether the server hung up."""
    try:
        data = await asyncio.wait_for(stream.read_some(step), CLEARTEXT_WAIT_S)
    except (asyncio.TimeoutError, TimeoutError):
        return b"", False
    except (ConnectionError, OSError):
        return b"", True
    return data, not data


async def tls_greeting(target: Target, service: str) -> bytes:
    """The first line a TLS-verified client receives on an implicit-TLS port."""
    stream = await LineStream.open(
        target.host, target.port(service), tls=target.tls_context, server_hostname=target.server_name
    )
    async with stream:
        return await stream.read_line(f"{service} greeting")


@dataclass(frozen=True)
class SmtpPlainResult:
    greeting: SmtpReply
    ehlo: SmtpReply
    auth_reply: SmtpReply | None
    ehlo_after_tls: SmtpReply | None
    transcript: str


async def smtp_before_tls(target: Target, service: str, *, try_auth: bool, upgrade: bool) -> SmtpPlainResult:
    """Greeting and EHLO in cleartext; optionally a cleartext AUTH, then STARTTLS and EHLO again."""
    stream = await LineStream.open(target.host, target.port(service))
    async with stream:
        greeting = await read_smtp_reply(stream, "SMTP greeting")
        ehlo = await smtp_command(stream, f"EHLO {PROBE_DOMAIN}")
        auth_reply = None
        if try_auth:
            user, password = decoy_credentials(target.users[0].address)
            token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
            auth_reply = await smtp_command(stream, f"AUTH PLAIN {token}")
        after = None
        if upgrade:
            ready = await smtp_command(stream, "STARTTLS")
            if ready.code == 220:
                await stream.start_tls(target.tls_context, target.server_name)
                after = await smtp_command(stream, f"EHLO {PROBE_DOMAIN}")
        return SmtpPlainResult(greeting, ehlo, auth_reply, after, str(stream.transcript))


@dataclass(frozen=True)
class ImapPlainResult:
    greeting: str
    capabilities: set[str]
    login: ImapReply
    capabilities_after_tls: set[str]
    transcript: str


async def imap_before_tls(target: Target) -> ImapPlainResult:
    """Greeting, CAPABILITY and a cleartext LOGIN on 143, then STARTTLS and CAPABILITY."""
    stream = await LineStream.open(target.host, target.port("imap"))
    async with stream:
        greeting = (await stream.read_line("IMAP greeting")).decode("utf-8", "replace").rstrip()
        capability = await imap_command(stream, "a1", "CAPABILITY")
        user, password = decoy_credentials(target.users[0].address)
        login = await imap_command(stream, "a2", f'LOGIN "{user}" "{password}"')
        after: set[str] = set()
        starttls = await imap_command(stream, "a3", "STARTTLS")
        if starttls.status == "OK":
            await stream.start_tls(target.tls_context, target.server_name)
            after = (await imap_command(stream, "a4", "CAPABILITY")).capabilities
        return ImapPlainResult(
            greeting,
            capability.capabilities | greeting_capabilities(greeting),
            login,
            after,
            str(stream.transcript),
        )


@dataclass(frozen=True)
class Pop3PlainResult:
    capabilities: list[str]
    user_error: str | None  # -ERR text for USER/PASS, None if both were accepted
    capabilities_after_tls: list[str]
    transcript: str


async def pop3_before_tls(target: Target) -> Pop3PlainResult:
    """CAPA and USER/PASS in cleartext on 110, then STLS and CAPA."""
    client = await POP3Client.connect(target.host, target.port("pop3"))
    try:
        before = await client.capabilities()
        user, password = decoy_credentials(target.users[0].address)
        error = None
        try:
            await client.login(user, password)
        except POP3Error as exc:
            error = exc.reply
        after: list[str] = []
        if any(c.upper() == "STLS" for c in before):
            await client.starttls(target.tls_context, target.server_name)
            after = await client.capabilities()
        return Pop3PlainResult(before, error, after, str(client.stream.transcript))
    finally:
        await client.close()


@dataclass(frozen=True)
class EnvelopeResult:
    mail: SmtpReply
    rcpt: SmtpReply
    transcript: str


async def smtp_envelope(target: Target, service: str, sender: str, recipient: str, *, starttls: bool) -> EnvelopeResult:
    """MAIL FROM and RCPT TO without AUTH (then RSET, QUIT): how is this recipient treated?"""
    implicit = service == "submissions"
    stream = await LineStream.open(
        target.host,
        target.port(service),
        tls=target.tls_context if implicit else None,
        server_hostname=target.server_name,
    )
    async with stream:
        await read_smtp_reply(stream, "SMTP greeting")
        await smtp_command(stream, f"EHLO {PROBE_DOMAIN}")
        if starttls and not implicit:
            await smtp_command(stream, "STARTTLS")
            await stream.start_tls(target.tls_context, target.server_name)
            await smtp_command(stream, f"EHLO {PROBE_DOMAIN}")
        mail = await smtp_command(stream, f"MAIL FROM:<{sender}>")
        rcpt = await smtp_command(stream, f"RCPT TO:<{recipient}>")
        await smtp_command(stream, "RSET")
        await smtp_command(stream, "QUIT")
        return EnvelopeResult(mail, rcpt, str(stream.transcript))
