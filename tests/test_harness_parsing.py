"""Pure parts of the harness: reply parsing, masking, messages, target files."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from harness.dialogue import greeting_capabilities, imap_command, read_smtp_reply
from harness.errors import ProtocolError, TargetError
from harness.message import ID_HEADER, body_sha256, header, make_message, split_message
from harness.stream import LineStream, mask
from harness.target import load_target


class ScriptedStream(LineStream):
    """A LineStream fed from bytes instead of a socket."""

    def __init__(self, data: bytes) -> None:
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        self._sent: list[bytes] = []
        super().__init__(reader, None, port=2525, timeout=1)  # type: ignore[arg-type]

    async def write(self, data: bytes, step: str = "write") -> None:
        self.transcript.sent(data)
        self._sent.append(data)


async def test_multiline_smtp_reply_and_ehlo_keywords() -> None:
    stream = ScriptedStream(b"250-mail.example.test\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 SIZE 10240000\r\n")
    reply = await read_smtp_reply(stream, "EHLO")
    assert reply.code == 250 and reply.keywords == {"PIPELINING", "STARTTLS", "SIZE"}


async def test_garbage_and_hangup_are_protocol_errors() -> None:
    with pytest.raises(ProtocolError, match="not an SMTP reply"):
        await read_smtp_reply(ScriptedStream(b"* OK imap\r\n"), "greeting")
    with pytest.raises(ProtocolError, match="connection closed"):
        await read_smtp_reply(ScriptedStream(b""), "greeting")


async def test_imap_tagged_reply_collects_capabilities() -> None:
    stream = ScriptedStream(b"* CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED\r\na1 OK done\r\n")
    reply = await imap_command(stream, "a1", "CAPABILITY")
    assert reply.status == "OK" and reply.capabilities == {"IMAP4REV1", "STARTTLS", "LOGINDISABLED"}
    assert greeting_capabilities("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready") == {"IMAP4REV1", "STARTTLS"}


@pytest.mark.parametrize(
    "line, shown",
    [
        (b"PASS hunter2\r\n", b"PASS ***"),
        (b"AUTH PLAIN AGFsaWNlAHNlY3JldA==", b"AUTH ***"),
        (b'a2 LOGIN "alice" "secret"', b"a2 LOGIN ***"),
        (b"USER alice", b"USER alice"),
        (b"EHLO x", b"EHLO x"),
    ],
)
def test_transcripts_mask_credentials(line: bytes, shown: bytes) -> None:
    assert mask(line) == shown


def test_message_is_unique_crlf_and_hashable() -> None:
    one, two = make_message("a@x.test", "b@x.test", via="t"), make_message("a@x.test", "b@x.test", via="t")
    assert one.token != two.token and header(one.raw, ID_HEADER) == one.token
    assert b"\n" not in one.raw.replace(b"\r\n", b"")
    assert body_sha256(b"Received: x\r\n" + one.raw) == one.body_sha256
    with pytest.raises(ValueError, match="separator"):
        split_message(b"no separator")


def write_target(tmp_path: Path, **changes: object) -> Path:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    data = {
        "host": "127.0.0.1",
        "server_name": "mail.example.test",
        "mail_domain": "example.test",
        "ca_file": str(ca),
        "ports": {s: p for s, p in zip(("smtp", "submissions", "submission", "imaps", "pop3s", "imap", "pop3"), range(1, 8), strict=True)},
        "users": [{"address": "a@example.test", "password": "p"}, {"address": "b@example.test", "password": "q"}],
    }
    data.update(changes)
    path = tmp_path / "target.json"
    path.write_text(json.dumps(data))
    return path


def test_target_loads_and_hides_passwords_from_repr(tmp_path: Path) -> None:
    target = load_target(write_target(tmp_path))
    assert target.port("pop3") == 7 and target.is_open("imap")
    assert "'p'" not in repr(target)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"host": "192.0.2.1"}, "127.0.0.1 only"),
        ({"ports": {"smtp": 25}}, "no port for"),
        ({"users": [{"address": "a@x", "password": "p"}]}, "at least two accounts"),
        ({"ca_file": "/nonexistent/ca.pem"}, "does not exist"),
        ({"server_name": None, "users": "nope"}, "incomplete or invalid"),
    ],
)
def test_bad_targets_are_refused_clearly(tmp_path: Path, changes: dict[str, object], message: str) -> None:
    with pytest.raises(TargetError, match=message):
        load_target(write_target(tmp_path, **changes))


def test_missing_target_file_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(TargetError, match="make up"):
        load_target(tmp_path / "target.json")
