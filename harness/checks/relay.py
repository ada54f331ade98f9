"""Relay and recipients: nobody relays without AUTH; unknown local users are refused at RCPT."""

from __future__ import annotations

from harness.checks.base import Check, Outcome, failed, passed, verdict
from harness.checks.auth import authenticate
from harness.dialogue import smtp_command
from harness.policy import Role, ServicePolicy
from harness.sessions import open_session
from harness.target import Target

FOREIGN = "victim@elsewhere.example"
OUTSIDER = "someone@sender.example"


def relay_attempts(target: Target) -> list[str]:
    """A foreign recipient, plainly and in the old disguises relays were tricked with."""
    local = target.mail_domain
    return [
        FOREIGN,
        f"victim%elsewhere.example@{local}",
        f"@{local}:{FOREIGN}",
        f'"{FOREIGN}"@{local}',
        f"victim@elsewhere.example@{local}",
    ]


async def no_open_relay(target: Target, service: ServicePolicy) -> Outcome:
    session = await open_session(target, service)
    try:
        accepted = []
        for recipient in relay_attempts(target):
            await smtp_command(session.stream, f"MAIL FROM:<{OUTSIDER}>")
            reply = await smtp_command(session.stream, f"RCPT TO:<{recipient}>")
            if 200 <= reply.code < 300:
                accepted.append(f"<{recipient}> {reply.code}")
            await smtp_command(session.stream, "RSET")
        return verdict(not accepted, f"{len(relay_attempts(target))} relay attempts refused without AUTH",
                       "relayed without AUTH: " + ", ".join(accepted), str(session.stream.transcript))
    finally:
        await session.close()


async def unknown_recipient(target: Target, service: ServicePolicy) -> Outcome:
    session = await open_session(target, service)
    try:
        sender = OUTSIDER
        if service.role is Role.SUBMISSION:
            account = target.users[0]
            ok, answer = await authenticate(session, "PLAIN", account.address, account.password)
            if not ok:
                return failed(f"could not log in to test: {answer}", str(session.stream.transcript))
            sender = account.address
        await smtp_command(session.stream, f"MAIL FROM:<{sender}>")
        reply = await smtp_command(session.stream, f"RCPT TO:<no-such-user-7f3a@{target.mail_domain}>")
        dialogue = str(session.stream.transcript)
        if 500 <= reply.code < 600:
            return passed(f"refused at RCPT: {reply.code} {reply.text}", dialogue)
        return failed(f"unknown local recipient answered {reply.code} {reply.text} (would bounce later)", dialogue)
    finally:
        await session.close()


def _smtp(service: ServicePolicy) -> bool:
    return service.protocol == "smtp" and service.speaks_tls


CHECKS = [
    Check("no-open-relay", "no unauthenticated relay to a foreign domain", _smtp, no_open_relay),
    Check("unknown-recipient", "unknown local recipients refused at RCPT", _smtp, unknown_recipient),
]
