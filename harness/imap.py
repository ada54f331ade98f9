"""Reading messages back over IMAPS with aioimaplib, verifying the server by host name."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Callable

import aioimaplib

from harness.errors import HarnessError, ProtocolError, StepTimeout
from harness.message import ID_HEADER
from harness.target import Account, Target

DEFAULT_TIMEOUT_S = 10.0
RECENT_WINDOW_S = 900  # test messages are searched for within minutes of being sent
POLL_INTERVAL_S = 0.05


class _NamedIMAP4SSL(aioimaplib.IMAP4_SSL):
    """IMAP4_SSL that connects to an address but verifies the certificate for a name."""

    def __init__(self, host: str, port: int, ssl_context: ssl.SSLContext, server_hostname: str, timeout: float):
        self._server_hostname = server_hostname
        super().__init__(host=host, port=port, ssl_context=ssl_context, timeout=timeout)

    def create_client(  # type: ignore[override]
        self,
        host: str,
        port: int,
        loop: asyncio.AbstractEventLoop | None,
        conn_lost_cb: Callable[[Exception | None], None] | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        local_loop = loop or asyncio.get_running_loop()
        self.protocol = aioimaplib.IMAP4ClientProtocol(local_loop, conn_lost_cb)
        self._client_task = local_loop.create_task(
            local_loop.create_connection(
                lambda: self.protocol, host, port, ssl=ssl_context, server_hostname=self._server_hostname
            )
        )


class ImapSession:
    """A logged-in IMAPS session on the target's INBOX."""

    def __init__(self, client: aioimaplib.IMAP4_SSL, port: int, timeout: float) -> None:
        self._client, self.port, self.timeout = client, port, timeout

    async def _call(self, step: str, awaitable):  # type: ignore[no-untyped-def]
        try:
            response = await asyncio.wait_for(awaitable, self.timeout)
        except asyncio.TimeoutError as exc:
            raise StepTimeout(f"IMAP {step}", self.port, self.timeout) from exc
        if response.result != "OK":
            raise ProtocolError(f"IMAP {step} on port {self.port} answered {response.result}: {response.lines!r}")
        return response

    async def find(self, token: str) -> list[int]:
        """Sequence numbers of messages whose id header is token, among those received in the
        last RECENT_WINDOW_S. YOUNGER (RFC 5032) is answered from the index, so Dovecot
        parses only recent messages' headers: a bare HEADER search over a mailbox of 7000
        messages took over 2 minutes the first time (the header is not in Dovecot's cache)."""
        await self._call("NOOP", self._client.noop())
        response = await self._call(
            "SEARCH", self._client.search("YOUNGER", str(RECENT_WINDOW_S), "HEADER", ID_HEADER, token)
        )
        return [int(n) for n in response.lines[0].split()]

    async def fetch(self, number: int) -> bytes:
        """The whole message (BODY.PEEK[], so \\Seen stays unset)."""
        response = await self._call("FETCH", self._client.fetch(str(number), "(BODY.PEEK[])"))
        literals = [bytes(line) for line in response.lines if isinstance(line, bytearray)]
        if len(literals) != 1:
            raise ProtocolError(f"IMAP FETCH on port {self.port} returned {len(literals)} literals")
        return literals[0]

    async def wait_for(self, token: str, deadline_s: float) -> bytes:
        """Poll until the message with token is visible, then fetch it."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + deadline_s
        while True:
            numbers = await self.find(token)
            if numbers:
                if len(numbers) > 1:
                    raise HarnessError(f"message {token} delivered {len(numbers)} times")
                return await self.fetch(numbers[0])
            if loop.time() > give_up:
                raise StepTimeout(f"IMAP wait for message {token}", self.port, deadline_s)
            await asyncio.sleep(POLL_INTERVAL_S)

    async def logout(self) -> None:
        try:
            await asyncio.wait_for(self._client.logout(), self.timeout)
        except (asyncio.TimeoutError, aioimaplib.Abort, OSError):
            pass


async def open_imaps(target: Target, account: Account, timeout: float = DEFAULT_TIMEOUT_S) -> ImapSession:
    """Connect to IMAPS, verify TLS, log in and select INBOX."""
    port = target.port("imaps")
    client = _NamedIMAP4SSL(target.host, port, target.tls_context, target.server_name, timeout)
    try:
        await asyncio.wait_for(client.wait_hello_from_server(), timeout)
    except asyncio.TimeoutError as exc:
        # aioimaplib reports connection and certificate errors only as this timeout.
        task_error = client._client_task.exception() if client._client_task.done() else None
        raise StepTimeout(f"IMAPS greeting (connect/TLS error: {task_error!r})", port, timeout) from exc
    session = ImapSession(client, port, timeout)
    await session._call("LOGIN", client.login(account.address, account.password))
    await session._call("SELECT", client.select("INBOX"))
    return session


async def fetch_delivered(target: Target, account: Account, token: str, deadline_s: float = 20.0) -> bytes:
    """Log in to IMAPS, wait until the message carrying token is visible, return its bytes."""
    session = await open_imaps(target, account)
    try:
        return await session.wait_for(token, deadline_s)
    finally:
        await session.logout()
