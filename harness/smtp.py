"""Authenticated submission with aiosmtplib, verifying the certificate by host name.

aiosmtplib verifies against the name it connects to; the harness connects to 127.0.0.1
but must verify the server's real name, so it hands aiosmtplib a connected socket and
the name (hostname= with sock=).
"""

from __future__ import annotations

import asyncio
import socket

import aiosmtplib

from harness.errors import StepTimeout
from harness.message import TestMessage
from harness.policy import Tls
from harness.target import Account, Target

DEFAULT_TIMEOUT_S = 10.0
SUBMISSION_SERVICES = ("submissions", "submission")


async def connected_socket(host: str, port: int, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setblocking(False)
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, (host, port)), timeout)
    except asyncio.TimeoutError as exc:
        sock.close()
        raise StepTimeout("connect", port, timeout) from exc
    except OSError:
        sock.close()
        raise
    return sock


async def open_submission(target: Target, service: str, timeout: float = DEFAULT_TIMEOUT_S) -> aiosmtplib.SMTP:
    """A connected client on 465 (implicit TLS) or 587 (STARTTLS enforced), not logged in."""
    if service not in SUBMISSION_SERVICES:
        raise ValueError(f"{service!r} is not a submission service: use one of {SUBMISSION_SERVICES}")
    return await open_session(target, service, None, timeout)


async def open_session(
    target: Target, service: str, account: Account | None, timeout: float = DEFAULT_TIMEOUT_S
) -> aiosmtplib.SMTP:
    """A client ready for MAIL FROM on 25, 465 or 587: TLS verified by host name (implicit
    on 465, STARTTLS otherwise), logged in when an account is given (25 never logs in)."""
    implicit = target.services[service].tls is Tls.IMPLICIT
    client = aiosmtplib.SMTP(
        hostname=target.server_name,
        sock=await connected_socket(target.host, target.port(service), timeout),
        use_tls=implicit,
        # True, never None: None silently stays in cleartext when STARTTLS is not offered.
        start_tls=not implicit,
        tls_context=target.tls_context,
        timeout=timeout,
    )
    await client.connect()
    try:
        if account is not None:
            await client.login(account.address, account.password)
    except BaseException:
        client.close()
        raise
    return client


async def submit(
    target: Target,
    service: str,
    account: Account,
    message: TestMessage,
    timeout: float = DEFAULT_TIMEOUT_S,
    mail_options: list[str] | None = None,
) -> str:
    """Log in and send; return the server's reply to DATA (e.g. '250 2.0.0 Ok: queued as ...')."""
    client = await open_session(target, service, account, timeout)
    try:
        return await send_on(client, message, mail_options or [])
    finally:
        await close_session(client)


async def relay_in(target: Target, message: TestMessage, timeout: float = DEFAULT_TIMEOUT_S) -> str:
    """Deliver on 25 as another mail server would: STARTTLS (verified), no AUTH."""
    client = await open_session(target, "smtp", None, timeout)
    try:
        return await send_on(client, message)
    finally:
        await close_session(client)


async def send_on(client: aiosmtplib.SMTP, message: TestMessage, mail_options: list[str] | None = None) -> str:
    """One transaction on an open session; the reply to DATA."""
    errors, reply = await client.sendmail(
        message.sender, [message.recipient], message.raw, mail_options=mail_options or []
    )
    if errors:
        raise aiosmtplib.SMTPRecipientsRefused(
            [aiosmtplib.SMTPRecipientRefused(r.code, r.message, rcpt) for rcpt, r in errors.items()]
        )
    return reply


async def close_session(client: aiosmtplib.SMTP) -> None:
    try:
        await client.quit()
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError):
        client.close()
