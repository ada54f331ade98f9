"""Protocol attacks, probed with raw streams because client libraries normalise what they send.

- STARTTLS command injection (CVE-2011-0411 and kin): commands pipelined after STARTTLS in
  the same packet must be discarded, not executed inside TLS.
- SMTP smuggling (CVE-2023-51764): a non-standard end-of-data sequence must never split one
  message into two.
"""

from __future__ import annotations

import asyncio

from harness.checks.base import Check, Outcome, failed, passed
from harness.dialogue import read_smtp_reply, smtp_command
from harness.imap import open_imaps
from harness.message import dot_stuff, make_message
from harness.policy import Role, ServicePolicy, Tls
from harness.sessions import STARTTLS_VERB, open_session
from harness.target import Target

INJECTED = {"smtp": "NOOP", "imap": "inj NOOP", "pop3": "NOOP"}
AFTER_TLS_WAIT_S = 0.5
# Non-standard end-of-data sequences seen in the smuggling research.
SMUGGLING_SEQUENCES = {
    "LF.CRLF": b"\n.\r\n",
    "LF.LF": b"\n.\n",
    "CRLF.LF": b"\r\n.\n",
    "CR.CRLF": b"\r.\r\n",
    "CR.CR": b"\r.\r",
}


async def starttls_injection(target: Target, service: ServicePolicy) -> Outcome:
    session = await open_session(target, service, upgrade=False)
    stream = session.stream
    try:
        verb = STARTTLS_VERB[service.protocol]
        command = f"{session.next_tag()} {verb}" if service.protocol == "imap" else verb
        await stream.write(f"{command}\r\n{INJECTED[service.protocol]}\r\n".encode(), "send STARTTLS + injected")
        answer = (await stream.read_line("STARTTLS reply")).decode(errors="replace")
        if service.protocol == "smtp" and not answer.startswith("220"):
            return failed(f"STARTTLS refused: {answer.strip()}", str(stream.transcript))
        try:
            await stream.start_tls(target.tls_context, target.server_name)
        except (OSError, asyncio.TimeoutError):
            # The server took the injected bytes as the start of the handshake and gave up:
            # nothing was executed (Dovecot does this).
            return passed("the server dropped the connection instead of executing the pipelined command",
                          str(stream.transcript))
        try:
            leaked = await asyncio.wait_for(stream.read_some("unsolicited data after TLS"), AFTER_TLS_WAIT_S)
        except (asyncio.TimeoutError, TimeoutError):
            leaked = b""
        if leaked:
            return failed(f"answered the injected {INJECTED[service.protocol]!r} inside TLS: {leaked[:60]!r}",
                          str(stream.transcript))
        return passed("the command pipelined with STARTTLS was discarded", str(stream.transcript))
    finally:
        await session.close()


async def smtp_smuggling(target: Target, service: ServicePolicy) -> Outcome:
    recipient = target.users[1].address
    split, dialogues, smuggled_tokens, carriers = [], [], [], []
    for label, sequence in SMUGGLING_SEQUENCES.items():
        carrier = make_message("someone@sender.example", recipient, via=f"smuggling-{label}")
        smuggled = make_message("spoofed@sender.example", recipient, via=f"smuggled-{label}")
        payload = (
            dot_stuff(carrier.raw).rstrip(b"\r\n") + sequence
            + f"MAIL FROM:<{smuggled.sender}>\r\nRCPT TO:<{recipient}>\r\nDATA\r\n".encode()
            + dot_stuff(smuggled.raw) + b"\r\n.\r\n"
        )
        session = await open_session(target, service, upgrade=False)
        stream = session.stream
        try:
            await smtp_command(stream, f"MAIL FROM:<{carrier.sender}>")
            await smtp_command(stream, f"RCPT TO:<{recipient}>")
            data = await smtp_command(stream, "DATA")
            if data.code != 354:
                split.append(f"{label}: DATA answered {data.code}")
                continue
            await stream.write(payload + b"QUIT\r\n", "send message with smuggled commands")
            codes = []
            while True:
                try:
                    reply = await read_smtp_reply(stream, "replies after DATA")
                except Exception:  # noqa: BLE001 - connection closed after QUIT ends the dialogue
                    break
                codes.append(reply.code)
                if reply.code == 221:
                    break
            dialogues.append(f"[{label}] replies after DATA: {codes}")
            if 354 in codes:
                split.append(f"{label}: the server started a second message ({codes})")
            if codes and 200 <= codes[0] < 300:
                carriers.append(carrier.token)
            smuggled_tokens.append(smuggled.token)
        finally:
            await session.close()
    if split:
        return failed("; ".join(split), "\n".join(dialogues))
    # Confirm in the mailbox: carriers arrived (when accepted), smuggled messages never did.
    imap = await open_imaps(target, target.users[1])
    try:
        for token in carriers:
            await imap.wait_for(token, 20)
        delivered = [t for t in smuggled_tokens if await imap.find(t)]
    finally:
        await imap.logout()
    if delivered:
        return failed(f"{len(delivered)} smuggled message(s) delivered", "\n".join(dialogues))
    return passed(f"{len(SMUGGLING_SEQUENCES)} sequences tried; no message was split "
                  f"({len(carriers)} delivered whole, the rest refused)", "\n".join(dialogues))


CHECKS = [
    Check("starttls-injection", "commands pipelined with STARTTLS are not executed inside TLS",
          lambda s: s.tls is Tls.STARTTLS, starttls_injection),
    Check("smtp-smuggling", "non-standard end-of-data never splits a message",
          lambda s: s.protocol == "smtp" and s.role is Role.RELAY_IN and s.speaks_tls, smtp_smuggling),
]
