"""A line-oriented protocol connection with a timeout on every step and a transcript.

Raw probes and the POP3 client use it instead of a client library because libraries
normalise what they send; here the bytes on the wire are exactly the bytes written.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from dataclasses import dataclass, field

from harness.errors import ProtocolError, StepTimeout

DEFAULT_TIMEOUT_S = 10.0
MAX_LINE = 64 * 1024
TRANSCRIBED_BYTES = 2048  # larger writes (message data) are summarised in the transcript
_SECRET_COMMANDS = re.compile(rb"^(PASS|AUTH|[A-Za-z0-9]+ LOGIN|[A-Za-z0-9]+ AUTHENTICATE)( .*)?$", re.I)


def mask(line: bytes) -> bytes:
    """Hide credentials in a transcript line (PASS, AUTH, LOGIN and their arguments)."""
    match = _SECRET_COMMANDS.match(line.rstrip(b"\r\n"))
    if match and match.group(2):
        return match.group(1) + b" ***"
    return line.rstrip(b"\r\n")


@dataclass
class Transcript:
    """The dialogue as seen by the client: 'C:' lines sent, 'S:' lines received."""

    lines: list[str] = field(default_factory=list)

    def sent(self, data: bytes) -> None:
        for line in data.split(b"\r\n"):
            if line:
                self.lines.append("C: " + mask(line).decode("utf-8", "replace"))

    def received(self, line: bytes) -> None:
        self.lines.append("S: " + line.rstrip(b"\r\n").decode("utf-8", "replace"))

    def note(self, text: str) -> None:
        self.lines.append("-- " + text)

    def __str__(self) -> str:
        return "\n".join(self.lines)


class LineStream:
    """One TCP connection (optionally TLS) to 127.0.0.1:port."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, timeout: float
    ) -> None:
        self._reader, self._writer = reader, writer
        self.port, self.timeout = port, timeout
        self.transcript = Transcript()

    @classmethod
    async def open(
        cls,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> LineStream:
        step = "TLS connect" if tls else "connect"
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection(
                    host, port, ssl=tls, server_hostname=server_hostname if tls else None, limit=MAX_LINE
                ),
                timeout,
            )
        except asyncio.TimeoutError as exc:
            raise StepTimeout(step, port, timeout) from exc
        stream = cls(reader, writer, port, timeout)
        stream.transcript.note(f"{step} to {host}:{port}")
        return stream

    async def _wait(self, step: str, awaitable):  # type: ignore[no-untyped-def]
        try:
            return await asyncio.wait_for(awaitable, self.timeout)
        except asyncio.TimeoutError as exc:
            raise StepTimeout(step, self.port, self.timeout) from exc

    async def read_line(self, step: str = "read line") -> bytes:
        """One line including CRLF; empty bytes when the server closed the connection."""
        try:
            line = await self._wait(step, self._reader.readline())
        except asyncio.LimitOverrunError as exc:
            raise ProtocolError(f"line longer than {MAX_LINE} bytes on port {self.port}") from exc
        if line:
            self.transcript.received(line)
        else:
            self.transcript.note("connection closed by server")
        return line

    async def read_some(self, step: str, limit: int = 4096) -> bytes:
        """Whatever bytes arrive next (b'' on close); for probes that expect no line."""
        return await self._wait(step, self._reader.read(limit))

    async def write(self, data: bytes, step: str = "write") -> None:
        if len(data) > TRANSCRIBED_BYTES:
            self.transcript.sent(data[:TRANSCRIBED_BYTES].rpartition(b"\r\n")[0])
            self.transcript.note(f"... {len(data):,} bytes sent in all")
        else:
            self.transcript.sent(data)
        self._writer.write(data)
        await self._wait(step, self._writer.drain())

    async def send_line(self, line: str | bytes) -> None:
        data = line.encode() if isinstance(line, str) else line
        await self.write(data + b"\r\n", f"send {mask(data).decode(errors='replace')!r}")

    async def send_secret(self, line: str) -> None:
        """Send a line that carries a credential (e.g. a SASL response): the transcript shows ***."""
        self.transcript.lines.append("C: ***")
        self._writer.write(line.encode() + b"\r\n")
        await self._wait("send credentials", self._writer.drain())

    async def start_tls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        await self._wait("STARTTLS handshake", self._writer.start_tls(context, server_hostname=server_hostname))
        self.transcript.note("TLS established")

    @property
    def tls_version(self) -> str | None:
        obj = self._writer.get_extra_info("ssl_object")
        return obj.version() if obj else None

    async def close(self) -> None:
        self._writer.close()
        try:
            await asyncio.wait_for(self._writer.wait_closed(), 2)
        except (asyncio.TimeoutError, ConnectionError, ssl.SSLError):
            pass

    async def __aenter__(self) -> LineStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()
