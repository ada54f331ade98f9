"""Authentication: nothing before TLS, every advertised mechanism after it, clean failures.

Passwords sent before TLS are decoys (see harness.probes.decoy_credentials): an answer of
"authentication failed" there means the server evaluated them, which is itself the failure.
"""

from __future__ import annotations

import base64

from harness import sasl
from harness.checks.base import Check, Outcome, failed, passed, verdict
from harness.dialogue import read_smtp_reply, smtp_command
from harness.policy import Role, ServicePolicy, Tls
from harness.probes import decoy_credentials
from harness.sessions import Session, open_session
from harness.target import Account, Target

SMTP_MECHANISMS = ("PLAIN", "LOGIN")


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


async def authenticate(session: Session, mechanism: str, user: str, password: str) -> tuple[bool, str]:
    """One authentication exchange; (succeeded, the server's final answer).

    mechanism is a SASL name (PLAIN, LOGIN, CRAM-MD5), or LOGIN-COMMAND (IMAP's LOGIN) or
    USER-PASS (POP3's USER/PASS). Every SASL response is sent as a secret (masked).
    """
    stream, protocol = session.stream, session.protocol
    if mechanism == "LOGIN-COMMAND":
        tag = session.next_tag()
        await stream.send_secret(f'{tag} LOGIN "{user}" "{password}"')
        return await _imap_tagged(session, tag)
    if mechanism == "USER-PASS":
        await stream.send_line(f"USER {user}")
        line = (await stream.read_line("POP3 USER reply")).decode(errors="replace").strip()
        if not line.startswith("+OK"):
            return False, line
        await stream.send_secret(f"PASS {password}")
        line = (await stream.read_line("POP3 PASS reply")).decode(errors="replace").strip()
        return line.startswith("+OK"), line
    exchange = sasl.start(mechanism, user, password)
    tag = session.next_tag()
    await stream.send_line({"smtp": f"AUTH {mechanism}", "imap": f"{tag} AUTHENTICATE {mechanism}",
                            "pop3": f"AUTH {mechanism}"}[protocol])
    while True:
        if protocol == "smtp":
            reply = await read_smtp_reply(stream, f"AUTH {mechanism} reply")
            challenge, final = (reply.text, None) if reply.code == 334 else (None, (reply.code == 235, f"{reply.code} {reply.text}"))
        else:
            line = (await stream.read_line(f"AUTH {mechanism} reply")).decode(errors="replace").strip()
            if protocol == "imap" and line.startswith("* "):
                continue
            if line == "+" or line.startswith("+ "):
                challenge, final = line[2:], None
            elif protocol == "imap":
                challenge, final = None, (line.startswith(f"{tag} OK"), line)
            else:
                challenge, final = None, (line.startswith("+OK"), line)
        if final is not None:
            return final
        try:
            answer = exchange.send(challenge)
        except StopIteration:
            answer = "*"  # the server wants more than the mechanism has: cancel (RFC 4954 s4)
        await stream.send_secret(answer)


async def _imap_tagged(session: Session, tag: str) -> tuple[bool, str]:
    while True:
        line = (await session.stream.read_line("IMAP reply")).decode(errors="replace").strip()
        if line.startswith(f"{tag} "):
            return line.split()[1].upper() == "OK", line


def advertised_mechanisms(session: Session) -> list[str]:
    """Every way this session offers to log in, in authenticate()'s names."""
    caps = session.capabilities
    mechanisms = sorted(c.split("=", 1)[1] for c in caps if c.startswith("AUTH="))
    if session.protocol == "imap" and "LOGINDISABLED" not in caps:
        mechanisms.insert(0, "LOGIN-COMMAND")
    if session.protocol == "pop3" and "USER" in caps:
        mechanisms.insert(0, "USER-PASS")
    return mechanisms


def _refused_without_checking(answer: str) -> bool:
    """A refusal that did not evaluate the (decoy) password."""
    lowered = answer.lower()
    return "authentication failed" not in lowered and "authenticationfailed" not in lowered and not answer.startswith("535")


# Every way to log in that each protocol has, tried in cleartext (each in a fresh session).
CLEARTEXT_ATTEMPTS = {
    "smtp": ("PLAIN", "LOGIN"),
    "imap": ("LOGIN-COMMAND", "PLAIN"),
    "pop3": ("USER-PASS", "PLAIN"),
}


async def auth_before_tls(target: Target, service: ServicePolicy) -> Outcome:
    user, password = decoy_credentials(target.users[0].address)
    offered: list[str] = []
    evaluated, refusals, dialogues = [], [], []
    for attempt in CLEARTEXT_ATTEMPTS[service.protocol]:
        session = await open_session(target, service, upgrade=False)
        try:
            if not offered:
                offered = advertised_mechanisms(session)
                if session.protocol == "imap" and "LOGINDISABLED" not in session.capabilities:
                    offered.append("(no LOGINDISABLED)")
            accepted, answer = await authenticate(session, attempt, user, password)
            if accepted or not _refused_without_checking(answer):
                evaluated.append(f"{attempt}: {answer}")
            refusals.append(f"{attempt}: {answer}")
        finally:
            dialogues.append(str(session.stream.transcript))
            await session.close()
    dialogue = "\n".join(dialogues)
    if offered:
        return failed(f"offered before TLS: {', '.join(offered)}", dialogue)
    if evaluated:
        return failed(f"cleartext credentials were evaluated: {'; '.join(evaluated)}", dialogue)
    return passed(f"nothing offered before TLS; refused: {'; '.join(refusals)}", dialogue)


async def no_auth(target: Target, service: ServicePolicy) -> Outcome:
    session = await open_session(target, service, upgrade=False)
    try:
        before = "AUTH" in session.capabilities
        await session.starttls(target.tls_context, target.server_name)
        after = "AUTH" in session.capabilities
        reply = await smtp_command(session.stream, "AUTH PLAIN " + _b64("\0probe\0probe"))
        dialogue = str(session.stream.transcript)
        if before or after:
            return failed(f"AUTH offered on a relay-in port ({'before' if before else 'after'} TLS)", dialogue)
        return verdict(reply.code >= 500 and reply.code != 535, f"AUTH neither offered nor accepted ({reply.code})",
                       f"AUTH answered {reply.code} {reply.text}", dialogue)
    finally:
        await session.close()


async def mechanisms(target: Target, service: ServicePolicy) -> Outcome:
    account = target.users[0]
    probe = await open_session(target, service)
    offered = advertised_mechanisms(probe)
    await probe.close()
    if not offered:
        return failed("no authentication mechanism offered after TLS")
    results, dialogue = [], []
    untestable = [m for m in offered if m not in (*sasl.SUPPORTED, "LOGIN-COMMAND", "USER-PASS")]
    offered = [m for m in offered if m not in untestable]
    for mechanism in offered:
        session = await open_session(target, service)
        try:
            ok, answer = await authenticate(session, mechanism, account.address, account.password)
            results.append((mechanism, ok, answer))
            dialogue.append(str(session.stream.transcript))
        finally:
            await session.close()
    broken = [f"{m}: {a}" for m, ok, a in results if not ok]
    note = f" (not tested, unknown to the harness: {', '.join(untestable)})" if untestable else ""
    return verdict(not broken, f"all advertised work: {', '.join(offered)}{note}", "; ".join(broken) + note,
                   "\n".join(dialogue))


def _password_mechanism(session: Session) -> str:
    if session.protocol == "imap":
        return "LOGIN-COMMAND"
    if session.protocol == "pop3" and "AUTH=PLAIN" not in session.capabilities:
        return "USER-PASS"
    return "PLAIN"


async def wrong_password(target: Target, service: ServicePolicy) -> Outcome:
    """The account logs in first, in a session of its own: a server that caches successful
    logins (e.g. Dovecot's auth cache) must still check the next password, not the last result."""
    account: Account = target.users[-1]
    warm = await open_session(target, service)
    try:
        ok, answer = await authenticate(warm, _password_mechanism(warm), account.address, account.password)
        if not ok:
            return failed(f"the right password was refused: {answer!r}", str(warm.stream.transcript))
    finally:
        await warm.close()
    session = await open_session(target, service)
    try:
        mechanism = _password_mechanism(session)
        ok, answer = await authenticate(session, mechanism, account.address, account.password + "-wrong")
        if ok:
            return failed("a wrong password was accepted right after a good login",
                          str(session.stream.transcript))
        expected = {"smtp": answer.startswith("535"), "imap": " NO " in f" {answer} ", "pop3": answer.startswith("-ERR")}
        if not expected[session.protocol]:
            return failed(f"wrong password answered {answer!r}", str(session.stream.transcript))
        ok, retry = await authenticate(session, mechanism, account.address, account.password)
        return verdict(ok, f"refused with {answer!r}; the same session then logged in",
                       f"after a failure the session is unusable: {retry}", str(session.stream.transcript))
    finally:
        await session.close()


def _login_port(service: ServicePolicy) -> bool:
    return service.role is not Role.RELAY_IN and service.speaks_tls


CHECKS = [
    Check("auth-before-tls", "no login offered or accepted before STARTTLS",
          lambda s: s.tls is Tls.STARTTLS and s.role is not Role.RELAY_IN, auth_before_tls),
    Check("no-auth", "relay-in port: AUTH neither offered nor accepted, before or after TLS",
          lambda s: s.role is Role.RELAY_IN and s.tls is Tls.STARTTLS, no_auth),
    Check("auth-mechanisms", "every mechanism advertised after TLS works", _login_port, mechanisms),
    Check("wrong-password",
          "a wrong password fails cleanly, even right after a good login, and the session stays usable",
          _login_port, wrong_password, phase=1),
]
