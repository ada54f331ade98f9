"""Protocol-neutral sessions: greet, read capabilities, upgrade to TLS, for SMTP, IMAP and POP3.

Checks are written once against this interface and run on every port the policy names.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass

from harness.dialogue import greeting_capabilities, imap_command, read_smtp_reply, smtp_command
from harness.errors import ProtocolError
from harness.policy import ServicePolicy, Tls
from harness.probes import PROBE_DOMAIN
from harness.stream import LineStream
from harness.target import Target

STARTTLS_VERB = {"smtp": "STARTTLS", "imap": "STARTTLS", "pop3": "STLS"}


@dataclass
class Session:
    """An open connection to one service, greeted, with its current capabilities."""

    stream: LineStream
    service: ServicePolicy
    greeting: str
    capabilities: set[str]
    _tag: int = 0

    @property
    def protocol(self) -> str:
        return self.service.protocol

    def next_tag(self) -> str:
        self._tag += 1
        return f"m{self._tag}"

    async def refresh_capabilities(self) -> set[str]:
        """EHLO / CAPABILITY / CAPA, as the protocol says; upper-case keywords."""
        if self.protocol == "smtp":
            reply = await smtp_command(self.stream, f"EHLO {PROBE_DOMAIN}")
            self.capabilities = reply.keywords | _smtp_auth_mechanisms(reply.lines)
        elif self.protocol == "imap":
            self.capabilities = (await imap_command(self.stream, self.next_tag(), "CAPABILITY")).capabilities
        else:
            self.capabilities = await _pop3_capa(self.stream)
        return self.capabilities

    async def starttls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        """Ask for the upgrade, complete the handshake, re-read capabilities (RFC 3207 s4.2)."""
        verb = STARTTLS_VERB[self.protocol]
        if self.protocol == "smtp":
            reply = await smtp_command(self.stream, verb)
            ok, said = reply.code == 220, f"{reply.code} {reply.text}"
        elif self.protocol == "imap":
            reply_i = await imap_command(self.stream, self.next_tag(), verb)
            ok, said = reply_i.status == "OK", f"{reply_i.status} {reply_i.text}"
        else:
            await self.stream.send_line(verb)
            line = (await self.stream.read_line("POP3 STLS reply")).decode("utf-8", "replace").strip()
            ok, said = line.startswith("+OK"), line
        if not ok:
            raise ProtocolError(f"{verb} refused on port {self.stream.port}: {said}")
        await self.stream.start_tls(context, server_hostname)
        await self.refresh_capabilities()

    async def close(self) -> None:
        await self.stream.close()


def _smtp_auth_mechanisms(lines: tuple[str, ...]) -> set[str]:
    """'AUTH PLAIN LOGIN' in EHLO -> {'AUTH=PLAIN', 'AUTH=LOGIN'}, like IMAP's notation."""
    found: set[str] = set()
    for line in lines[1:]:
        words = line.upper().split()
        if words and words[0] in ("AUTH", "AUTH=LOGIN"):
            found |= {f"AUTH={m}" for m in words[1:]}
    return found


async def _pop3_capa(stream: LineStream) -> set[str]:
    await stream.send_line("CAPA")
    first = await stream.read_line("POP3 CAPA reply")
    if not first.startswith(b"+OK"):
        return set()
    found: set[str] = set()
    while True:
        line = (await stream.read_line("POP3 CAPA data")).decode("utf-8", "replace").strip()
        if line in (".", ""):
            return found
        words = line.upper().split()
        found.add(words[0])
        if words[0] == "SASL":
            found |= {f"AUTH={m}" for m in words[1:]}


async def _greeting(stream: LineStream, protocol: str) -> str:
    if protocol == "smtp":
        reply = await read_smtp_reply(stream, "SMTP greeting")
        if reply.code != 220:
            raise ProtocolError(f"SMTP greeting on port {stream.port} is {reply.code} {reply.text}")
        return f"{reply.code} {reply.text}"
    line = (await stream.read_line(f"{protocol.upper()} greeting")).decode("utf-8", "replace").rstrip()
    expected = "* OK" if protocol == "imap" else "+OK"
    if not line.startswith(expected):
        raise ProtocolError(f"{protocol.upper()} greeting on port {stream.port} is {line!r}")
    return line


async def open_session(
    target: Target,
    service: ServicePolicy,
    *,
    context: ssl.SSLContext | None = None,
    upgrade: bool = True,
    timeout: float = 10.0,
) -> Session:
    """Connect as the policy says; with upgrade, STARTTLS ports are upgraded before returning.

    context replaces the target's verifying context (e.g. to pin a TLS version).
    """
    context = context or target.tls_context
    implicit = service.tls is Tls.IMPLICIT
    stream = await LineStream.open(
        target.host,
        service.port,
        tls=context if implicit else None,
        server_hostname=target.server_name,
        timeout=timeout,
    )
    try:
        greeting = await _greeting(stream, service.protocol)
        session = Session(stream, service, greeting, greeting_capabilities(greeting))
        await session.refresh_capabilities()
        if upgrade and not implicit:
            await session.starttls(context, target.server_name)
        return session
    except BaseException:
        await stream.close()
        raise
