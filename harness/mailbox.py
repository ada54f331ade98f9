"""Find a test message in a mailbox over POP3S (IMAPS lives in harness.imap)."""

from __future__ import annotations

import asyncio

from harness.errors import HarnessError, StepTimeout
from harness.message import ID_HEADER, header
from harness.pop3 import POP3Client, POP3Error
from harness.target import Account, Target

DEFAULT_TIMEOUT_S = 10.0
POLL_INTERVAL_S = 0.1
RECENT_MESSAGES = 500


async def open_pop3s(target: Target, account: Account, timeout: float = DEFAULT_TIMEOUT_S) -> POP3Client:
    client = await POP3Client.connect(
        target.host, target.port("pop3s"), tls=target.tls_context, server_hostname=target.server_name, timeout=timeout
    )
    await client.login(account.address, account.password)
    return client


async def _find(client: POP3Client, token: str) -> list[int]:
    """Numbers of messages carrying token, newest first, among the newest RECENT_MESSAGES
    (test messages were just delivered; a big mailbox would cost one TOP per message)."""
    count, _size = await client.stat()
    found = []
    for number in range(count, max(0, count - RECENT_MESSAGES), -1):
        try:
            headers = await client.top(number, 0)
        except POP3Error:
            continue  # deleted by a concurrent session since this one started
        if header(headers, ID_HEADER) == token:
            found.append(number)
    return found


async def pop3_fetch(
    target: Target, account: Account, token: str, *, delete: bool = False, deadline_s: float = DEFAULT_TIMEOUT_S
) -> bytes:
    """The message carrying token, polling with fresh sessions (a POP3 session is a snapshot)."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline_s
    while True:
        client = await open_pop3s(target, account)
        try:
            numbers = await _find(client, token)
            if len(numbers) > 1:
                raise HarnessError(f"message {token} delivered {len(numbers)} times")
            if numbers:
                raw = await client.retr(numbers[0])
                if delete:
                    await client.dele(numbers[0])
                await client.quit()
                return raw
            await client.quit()
        finally:
            await client.close()
        if loop.time() > give_up:
            raise StepTimeout(f"POP3 wait for message {token}", target.port("pop3s"), deadline_s)
        await asyncio.sleep(POLL_INTERVAL_S)
