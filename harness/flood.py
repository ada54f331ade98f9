"""Bad input at every open port, for as long as a load runs: connections that never speak,
binary garbage, overlong lines, malformed commands and wrong passwords.

Used by the fault test that proves good mail keeps flowing through it. Every attempt has a
timeout and each worker pauses between attempts, so the flood is steady, not a CPU race.
Only 127.0.0.1 is a target (Target enforces it).
"""

from __future__ import annotations

import asyncio
import os
import ssl
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiosmtplib

from harness.errors import HarnessError
from harness.policy import Tls
from harness.smtp import open_submission
from harness.stream import LineStream
from harness.target import Target

STEP_TIMEOUT_S = 5.0
PAUSE_S = 0.1
IDLE_PER_PORT = 3  # connections held open without a word, per port
OVERLONG = b"A" * 200_000  # far past SMTP's 1000 and Dovecot's 64 KB command line limits
MALFORMED = {
    "smtp": [b"MAIL FROM:<<<>>>", b"RCPT TO:", b"DATA", b"AUTH PLAIN !!!not-base64!!!", b"EHLO " + b"x " * 500,
             b"\x00\xff\xfe\r\nQUIT\x00", b"BDAT 99999999999999999999 LAST", b"STARTTLS extra args"],
    "imap": [b"a1 LOGIN", b"a2 SELECT", b"a3 FETCH 1:* BODY[]", b"a4 LOGIN {999999999}", b"* * *",
             b"a5 AUTHENTICATE PLAIN", b"=", b"a6 ID (" + b'"k" "v" ' * 200 + b")"],
    "pop3": [b"USER", b"PASS x", b"RETR -1", b"TOP 1 99999999999", b"AUTH PLAIN ====", b"\x00\x01\x02", b"STLS x"],
}
FLOOD_ERRORS = (OSError, HarnessError, asyncio.TimeoutError, ssl.SSLError, aiosmtplib.SMTPException, EOFError)


@dataclass
class FloodStats:
    attempts: Counter[str] = field(default_factory=Counter)
    answered: Counter[str] = field(default_factory=Counter)  # the server answered as expected (no timeout or drop)


async def _connect(target: Target, service: str) -> LineStream:
    implicit = target.services[service].tls is Tls.IMPLICIT
    return await LineStream.open(
        target.host, target.port(service), tls=target.tls_context if implicit else None,
        server_hostname=target.server_name, timeout=STEP_TIMEOUT_S,
    )


async def _drain(stream: LineStream) -> None:
    """Read whatever the server answers until it closes or goes quiet."""
    try:
        while await stream.read_some("flood read", 65536):
            pass
    except FLOOD_ERRORS:
        pass


async def garbage(target: Target, service: str) -> None:
    async with await _connect(target, service) as stream:
        await stream.write(os.urandom(8192) + b"\r\n" + os.urandom(512))
        await _drain(stream)


async def overlong_line(target: Target, service: str) -> None:
    async with await _connect(target, service) as stream:
        await stream.read_line("greeting")
        await stream.write(OVERLONG + b"\r\n")
        await stream.read_line("reply to an overlong line")  # an error, or a hang-up (b"")


async def malformed_commands(target: Target, service: str) -> None:
    protocol = target.services[service].protocol
    async with await _connect(target, service) as stream:
        await stream.read_line("greeting")
        for line in MALFORMED[protocol]:
            await stream.write(line + b"\r\n")
            if not await stream.read_line("reply"):
                return  # the server hung up on us: that is a fine answer too


async def wrong_password(target: Target, service: str) -> None:
    account = target.users[0]
    protocol = target.services[service].protocol
    if protocol == "smtp":
        client = await open_submission(target, service, STEP_TIMEOUT_S)
        try:
            await client.ehlo()
            await client.auth_plain(account.address, account.password + "-wrong")
        except aiosmtplib.SMTPAuthenticationError as refused:
            if refused.code != 535:
                raise
        finally:
            client.close()
        return
    async with await _connect(target, service) as stream:
        await stream.read_line("greeting")
        if protocol == "imap":
            await stream.send_secret(f'a1 LOGIN "{account.address}" "wrong-{account.password}"')
        else:
            await stream.send_line(f"USER {account.address}")
            await stream.read_line("USER reply")
            await stream.send_secret(f"PASS wrong-{account.password}")
        await stream.read_line("login reply")


async def _hold_idle(target: Target, service: str, stop: asyncio.Event) -> None:
    try:
        stream = await _connect(target, service)
    except FLOOD_ERRORS:
        return
    try:
        await stop.wait()
    finally:
        await stream.close()


async def _worker(
    name: str, attack: Callable[[], Awaitable[None]], stop: asyncio.Event, stats: FloodStats
) -> None:
    while not stop.is_set():
        stats.attempts[name] += 1
        try:
            await asyncio.wait_for(attack(), 4 * STEP_TIMEOUT_S)
            stats.answered[name] += 1
        except FLOOD_ERRORS:
            pass
        await asyncio.sleep(PAUSE_S)


async def flood(target: Target, stop: asyncio.Event) -> FloodStats:
    """Attack every open port until stop is set; return what was tried."""
    stats = FloodStats()
    open_services = [s for s, policy in target.services.items() if policy.speaks_tls]
    logins = [s for s in ("submissions", "submission", "imaps", "pop3s") if s in open_services]
    jobs = [_hold_idle(target, s, stop) for s in open_services for _ in range(IDLE_PER_PORT)]
    for service in open_services:
        jobs.append(_worker(f"garbage {service}", lambda s=service: garbage(target, s), stop, stats))
        jobs.append(_worker(f"overlong {service}", lambda s=service: overlong_line(target, s), stop, stats))
        jobs.append(_worker(f"malformed {service}", lambda s=service: malformed_commands(target, s), stop, stats))
    for service in logins:
        jobs.append(_worker(f"wrong password {service}", lambda s=service: wrong_password(target, s), stop, stats))
    await asyncio.gather(*jobs)
    return stats
