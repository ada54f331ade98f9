"""Delivery integrity: what was accepted arrives once and byte for byte; oversize is refused.

Sent over each submission port, read back over IMAPS and (when open) POP3S, compared by
hash. Oversized mail must be refused at SMTP time (552), never accepted and bounced.
"""

from __future__ import annotations

import base64
import hashlib
import os

from harness.checks.auth import authenticate
from harness.checks.base import Check, Outcome, failed, verdict
from harness.dialogue import read_smtp_reply, smtp_command
from harness.imap import fetch_delivered, open_imaps
from harness.mailbox import pop3_fetch
from harness.message import TestMessage, dot_stuff, make_message, split_message
from harness.policy import Role, ServicePolicy
from harness.sessions import open_session
from harness.smtp import submit
from harness.target import Target

DELIVERY_DEADLINE_S = 20.0
SIZE_MARGIN = 64 * 1024  # room for the Received headers the servers add


def utf8_message(sender: str, recipient: str, via: str) -> TestMessage:
    """An 8-bit UTF-8 body (8BITMIME), with lines in several scripts."""
    base = make_message(sender, recipient, via=via, body_lines=5)
    head, _ = split_message(base.raw)
    head = head.replace(b"charset=us-ascii", b"charset=utf-8") + b"Content-Transfer-Encoding: 8bit\r\n"
    body = "Grüße aus Zürich — 你好，世界 — Привет — 🙂 — ½ €\r\n".encode() * 20
    return TestMessage(base.token, sender, recipient, head + b"\r\n" + body)


def large_message(sender: str, recipient: str, via: str, total: int) -> TestMessage:
    """A MIME message with a random attachment, about total bytes long."""
    base = make_message(sender, recipient, via=via, body_lines=1)
    head, _ = split_message(base.raw)
    head = head.replace(b"Content-Type: text/plain; charset=us-ascii", b'Content-Type: multipart/mixed; boundary="b1"')
    preamble = (b"--b1\r\nContent-Type: application/octet-stream\r\n"
                b"Content-Transfer-Encoding: base64\r\n\r\n")
    encoded_size = max(0, total - len(head) - len(preamble) - 64)
    raw = os.urandom(encoded_size // 78 * 57)  # a base64 line: 57 bytes -> 76 characters + CRLF
    lines = base64.encodebytes(raw).replace(b"\n", b"\r\n")
    return TestMessage(base.token, sender, recipient, head + b"\r\n" + preamble + lines + b"--b1--\r\n")


async def _round_trip(target: Target, service: ServicePolicy, message: TestMessage, mail_options: list[str] | None = None) -> Outcome:
    sender, recipient = target.users[0], target.users[1]
    reply = await submit(target, service.name, sender, message, mail_options=mail_options)
    over_imap = await fetch_delivered(target, recipient, message.token, DELIVERY_DEADLINE_S)
    readers = {"IMAPS": over_imap}
    if target.is_open("pop3s"):
        readers["POP3S"] = await pop3_fetch(target, recipient, message.token, delete=True)
    digest = hashlib.sha256(message.body).hexdigest()
    wrong = [name for name, raw in readers.items() if split_message(raw)[1] != message.body]
    return verdict(
        not wrong,
        f"{len(message.raw):,} bytes: {reply.split()[0]}, body sha256 {digest[:12]} identical over {', '.join(readers)}",
        f"body changed in transit (read over {', '.join(wrong)})",
    )


async def delivery(target: Target, service: ServicePolicy) -> Outcome:
    return await _round_trip(target, service, make_message(target.users[0].address, target.users[1].address, via=service.name))


async def delivery_8bit(target: Target, service: ServicePolicy) -> Outcome:
    message = utf8_message(target.users[0].address, target.users[1].address, service.name)
    return await _round_trip(target, service, message, mail_options=["BODY=8BITMIME"])


async def size_near_limit(target: Target, service: ServicePolicy) -> Outcome:
    total = target.message_size_limit - SIZE_MARGIN
    message = large_message(target.users[0].address, target.users[1].address, service.name, total)
    return await _round_trip(target, service, message)


async def size_over_limit(target: Target, service: ServicePolicy) -> Outcome:
    limit = target.message_size_limit
    account = target.users[0]
    session = await open_session(target, service)
    try:
        ok, answer = await authenticate(session, "PLAIN", account.address, account.password)
        if not ok:
            return failed(f"could not log in to test: {answer}", str(session.stream.transcript))
        declared = await smtp_command(session.stream, f"MAIL FROM:<{account.address}> SIZE={limit + 1}")
        await smtp_command(session.stream, "RSET")
        # Undeclared: the server must count and refuse at end of data.
        message = large_message(account.address, target.users[1].address, service.name, limit + 256 * 1024)
        await smtp_command(session.stream, f"MAIL FROM:<{account.address}>")
        await smtp_command(session.stream, f"RCPT TO:<{message.recipient}>")
        data = await smtp_command(session.stream, "DATA")
        end = None
        if data.code == 354:
            await session.stream.write(dot_stuff(message.raw) + b".\r\n", "send oversized message")
            end = await read_smtp_reply(session.stream, "reply to end of data")
        dialogue = str(session.stream.transcript)
    finally:
        await session.close()
    problems = []
    if declared.code != 552:
        problems.append(f"MAIL FROM with SIZE={limit + 1} answered {declared.code}")
    if end is None or end.code != 552:
        problems.append(f"undeclared oversize answered {end.code if end else data.code} after DATA")
    if problems:
        return failed("; ".join(problems), dialogue)
    imap = await open_imaps(target, target.users[1])
    try:
        found = await imap.find(message.token)
    finally:
        await imap.logout()
    return verdict(not found, f"552 for SIZE={limit + 1} and for {len(message.raw):,} undeclared bytes; nothing delivered",
                   "oversized message delivered", dialogue)


def _submission(service: ServicePolicy) -> bool:
    return service.role is Role.SUBMISSION and service.speaks_tls


def _implicit_submission(service: ServicePolicy) -> bool:
    return _submission(service) and service.standard_port == 465


CHECKS = [
    Check("delivery", "sent, read back over IMAPS and POP3S byte for byte", _submission, delivery),
    Check("delivery-8bit", "8-bit UTF-8 body delivered intact", _submission, delivery_8bit),
    Check("size-near-limit", "a message just under SIZE is delivered intact", _implicit_submission, size_near_limit),
    Check("size-over-limit", "a message over SIZE is refused with 552 and not delivered", _implicit_submission, size_over_limit),
]
