"""Transport: implicit TLS speaks TLS first, STARTTLS upgrades for real, closed means closed."""

from __future__ import annotations

from harness.checks.base import Check, Outcome, failed, passed, verdict
from harness.policy import ServicePolicy, Tls
from harness.probes import cleartext_client
from harness.sessions import STARTTLS_VERB, open_session
from harness.target import Target

CLEARTEXT_GREETINGS = (b"220", b"250", b"* OK", b"+OK", b"* BYE", b"-ERR", b"5", b"4")
CLEARTEXT_HELLO = {"smtp": b"EHLO probe.invalid\r\n", "imap": b"a1 CAPABILITY\r\n", "pop3": b"CAPA\r\n"}


async def tls_first(target: Target, service: ServicePolicy) -> Outcome:
    plain = await cleartext_client(target, service.name, CLEARTEXT_HELLO[service.protocol])
    if plain.refused:
        return failed("nothing listens on the port", plain.transcript)
    if plain.greeting or plain.reply.startswith(CLEARTEXT_GREETINGS):
        return failed("a cleartext client got a cleartext answer", plain.transcript)
    session = await open_session(target, service)
    try:
        return passed(
            f"no cleartext greeting; {session.stream.tls_version} greeting: {session.greeting[:40]}",
            str(session.stream.transcript),
        )
    finally:
        await session.close()


async def starttls(target: Target, service: ServicePolicy) -> Outcome:
    verb = STARTTLS_VERB[service.protocol]
    session = await open_session(target, service, upgrade=False)
    try:
        if verb not in session.capabilities:
            return failed(f"{verb} is not advertised before TLS", str(session.stream.transcript))
        await session.starttls(target.tls_context, target.server_name)
        return verdict(
            verb not in session.capabilities,
            f"{verb} advertised, upgrade to {session.stream.tls_version} done, capabilities re-read",
            f"{verb} is still advertised after the upgrade",
            str(session.stream.transcript),
        )
    finally:
        await session.close()


async def closed(target: Target, service: ServicePolicy) -> Outcome:
    plain = await cleartext_client(target, service.name, CLEARTEXT_HELLO[service.protocol])
    return verdict(plain.closed, "nothing answers", "something answers on a port the policy closes", plain.transcript)


CHECKS = [
    Check("tls-first", "implicit TLS: TLS from the first byte, never a cleartext greeting",
          lambda s: s.tls is Tls.IMPLICIT, tls_first),
    Check("starttls", "STARTTLS advertised, upgrade completes, not offered again after it",
          lambda s: s.tls is Tls.STARTTLS, starttls),
    Check("closed", "a port the policy closes does not answer", lambda s: s.tls is Tls.CLOSED, closed),
]
