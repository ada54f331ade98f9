"""A small asyncio POP3 client (RFC 1939, CAPA and STLS from RFC 2449/2595, AUTH PLAIN).

No maintained async POP3 library exists; this one does only what the harness needs,
verifies TLS through the caller's context and keeps a masked transcript of the dialogue.
"""

from __future__ import annotations

import base64
import ssl

from harness.errors import ProtocolError
from harness.stream import DEFAULT_TIMEOUT_S, LineStream


class POP3Error(ProtocolError):
    """The server answered -ERR (or something that is not a POP3 status)."""

    def __init__(self, command: str, reply: bytes) -> None:
        self.command = command
        self.reply = reply.rstrip(b"\r\n").decode("utf-8", "replace")
        super().__init__(f"POP3 {command}: {self.reply or 'connection closed'}")


def unstuff(line: bytes) -> bytes:
    """Undo byte-stuffing of a multi-line response line (RFC 1939 s3)."""
    return line[1:] if line.startswith(b"..") else line


class POP3Client:
    """One POP3 session; create with ``await POP3Client.connect(...)``."""

    def __init__(self, stream: LineStream, greeting: bytes) -> None:
        self.stream = stream
        self.greeting = greeting

    @classmethod
    async def connect(
        cls,
        host: str,
        port: int,
        *,
        tls: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_S,
    ) -> POP3Client:
        """Connect (implicit TLS when tls is given) and read the +OK greeting."""
        stream = await LineStream.open(host, port, tls=tls, server_hostname=server_hostname, timeout=timeout)
        greeting = await stream.read_line("POP3 greeting")
        if not greeting.startswith(b"+OK"):
            await stream.close()
            raise POP3Error("greeting", greeting)
        return cls(stream, greeting)

    async def command(self, command: str) -> bytes:
        """Send one command; return its +OK line or raise POP3Error."""
        await self.stream.send_line(command)
        verb = command.split(" ", 1)[0].upper()
        reply = await self.stream.read_line(f"POP3 {verb} reply")
        if not reply.startswith(b"+OK"):
            raise POP3Error(verb if verb not in ("PASS", "AUTH") else verb + " ***", reply)
        return reply

    async def multiline(self, command: str) -> list[bytes]:
        """Send a command whose +OK is followed by lines up to '.'; return them unstuffed."""
        await self.command(command)
        lines: list[bytes] = []
        while True:
            line = await self.stream.read_line(f"POP3 {command.split()[0]} data")
            if not line:
                raise POP3Error(command, b"connection closed inside a multi-line response")
            if line in (b".\r\n", b".\n"):
                return lines
            lines.append(unstuff(line.rstrip(b"\r\n")))

    async def capabilities(self) -> list[str]:
        return [line.decode("utf-8", "replace") for line in await self.multiline("CAPA")]

    async def starttls(self, context: ssl.SSLContext, server_hostname: str) -> None:
        await self.command("STLS")
        await self.stream.start_tls(context, server_hostname)

    async def login(self, user: str, password: str) -> None:
        await self.command(f"USER {user}")
        await self.command(f"PASS {password}")

    async def auth_plain(self, user: str, password: str) -> None:
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        await self.command(f"AUTH PLAIN {token}")

    async def stat(self) -> tuple[int, int]:
        parts = (await self.command("STAT")).split()
        try:
            return int(parts[1]), int(parts[2])
        except (IndexError, ValueError) as exc:
            raise POP3Error("STAT", b"unparsable: " + b" ".join(parts)) from exc

    async def top(self, number: int, lines: int = 0) -> bytes:
        return b"".join(line + b"\r\n" for line in await self.multiline(f"TOP {number} {lines}"))

    async def retr(self, number: int) -> bytes:
        return b"".join(line + b"\r\n" for line in await self.multiline(f"RETR {number}"))

    async def dele(self, number: int) -> None:
        await self.command(f"DELE {number}")

    async def quit(self) -> None:
        """QUIT commits deletions (UPDATE state) and closes."""
        try:
            await self.command("QUIT")
        finally:
            await self.stream.close()

    async def close(self) -> None:
        await self.stream.close()
