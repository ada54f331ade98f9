"""Reply parsing for raw SMTP and IMAP dialogues over a LineStream."""

from __future__ import annotations

from dataclasses import dataclass

from harness.errors import ProtocolError
from harness.stream import LineStream


@dataclass(frozen=True)
class SmtpReply:
    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        return " / ".join(self.lines)

    @property
    def keywords(self) -> set[str]:
        """EHLO keywords (first word of each line after the first), upper-case."""
        return {line.split()[0].upper() for line in self.lines[1:] if line.split()}


async def read_smtp_reply(stream: LineStream, step: str) -> SmtpReply:
    """A (possibly multi-line) SMTP reply: 'NNN-text' lines ended by 'NNN text'."""
    lines: list[str] = []
    while True:
        raw = await stream.read_line(step)
        if not raw:
            raise ProtocolError(f"{step}: connection closed on port {stream.port}")
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        if len(line) < 3 or not line[:3].isdigit():
            raise ProtocolError(f"{step}: not an SMTP reply on port {stream.port}: {line!r}")
        lines.append(line[4:])
        if len(line) == 3 or line[3] == " ":
            return SmtpReply(int(line[:3]), tuple(lines))


async def smtp_command(stream: LineStream, command: str) -> SmtpReply:
    await stream.send_line(command)
    return await read_smtp_reply(stream, f"SMTP {command.split()[0]} reply")


@dataclass(frozen=True)
class ImapReply:
    status: str  # OK, NO or BAD
    text: str
    untagged: tuple[str, ...]

    @property
    def capabilities(self) -> set[str]:
        found: set[str] = set()
        for line in self.untagged:
            if line.upper().startswith("* CAPABILITY "):
                found |= {word.upper() for word in line.split()[2:]}
        return found


async def imap_command(stream: LineStream, tag: str, command: str) -> ImapReply:
    """Send a tagged command and collect untagged lines up to the tagged status."""
    await stream.send_line(f"{tag} {command}")
    untagged: list[str] = []
    while True:
        raw = await stream.read_line(f"IMAP {command.split()[0]} reply")
        if not raw:
            raise ProtocolError(f"IMAP {command.split()[0]}: connection closed on port {stream.port}")
        line = raw.rstrip(b"\r\n").decode("utf-8", "replace")
        if line.startswith(f"{tag} "):
            status, _, text = line[len(tag) + 1 :].partition(" ")
            return ImapReply(status.upper(), text, tuple(untagged))
        untagged.append(line)


def greeting_capabilities(greeting: str) -> set[str]:
    """Capabilities announced in an IMAP greeting's [CAPABILITY ...] response code."""
    start = greeting.upper().find("[CAPABILITY ")
    if start < 0:
        return set()
    end = greeting.find("]", start)
    return {word.upper() for word in greeting[start + 1 : end].split()[1:]}
