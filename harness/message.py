"""Test messages with a unique id, and the byte-for-byte comparison of what came back."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from email.parser import BytesHeaderParser
from email.utils import format_datetime, localtime

ID_HEADER = "X-Mailstack-Id"


@dataclass(frozen=True)
class TestMessage:
    """A message as submitted: CRLF line endings, ASCII, a unique id in a header."""

    __test__ = False  # not a pytest test class

    token: str
    sender: str
    recipient: str
    raw: bytes

    @property
    def body(self) -> bytes:
        return split_message(self.raw)[1]

    @property
    def body_sha256(self) -> str:
        return hashlib.sha256(self.body).hexdigest()


def split_message(raw: bytes) -> tuple[bytes, bytes]:
    """Header block and body, split at the first empty line (RFC 5322 s2.1)."""
    head, separator, body = raw.partition(b"\r\n\r\n")
    if not separator:
        raise ValueError("message has no header/body separator (CRLF CRLF)")
    return head + b"\r\n", body


def header(raw: bytes, name: str) -> str | None:
    """The value of one header of a raw message (None when absent)."""
    return BytesHeaderParser().parsebytes(split_message(raw)[0]).get(name)


def make_message(sender: str, recipient: str, *, via: str, body_lines: int = 40) -> TestMessage:
    """A unique message whose body exercises dot-stuffing and long lines."""
    token = uuid.uuid4().hex
    domain = sender.rpartition("@")[2]
    lines = [f"mailstack round trip {token} via {via}", ".a line that starts with a dot", "."]
    lines += [f"line {n:04d} " + "x" * 60 for n in range(body_lines)]
    headers = [
        f"From: <{sender}>",
        f"To: <{recipient}>",
        f"Subject: mailstack {via} {token[:8]}",
        f"Date: {format_datetime(localtime())}",
        f"Message-ID: <{token}@{domain}>",
        f"{ID_HEADER}: {token}",
        "MIME-Version: 1.0",
        "Content-Type: text/plain; charset=us-ascii",
    ]
    raw = ("\r\n".join(headers) + "\r\n\r\n" + "\r\n".join(lines) + "\r\n").encode("ascii")
    return TestMessage(token, sender, recipient, raw)


def dot_stuff(raw: bytes) -> bytes:
    """SMTP transparency (RFC 5321 s4.5.2): a leading '.' on a line is doubled."""
    lines = raw.split(b"\r\n")
    return b"\r\n".join(b"." + line if line.startswith(b".") else line for line in lines)


def body_sha256(raw: bytes) -> str:
    return hashlib.sha256(split_message(raw)[1]).hexdigest()
