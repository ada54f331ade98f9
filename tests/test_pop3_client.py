"""The POP3 client against a small local asyncio POP3 server (no Docker)."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator

import pytest

from harness.errors import StepTimeout
from harness.pop3 import POP3Client, POP3Error, unstuff
from stack.pki import PkiFiles, ensure_pki

MESSAGES = [
    b"Subject: one\r\nX-Mailstack-Id: aaa\r\n\r\nfirst\r\n",
    b"Subject: two\r\nX-Mailstack-Id: bbb\r\n\r\n.starts with a dot\r\n.\r\nend\r\n",
]


def stuffed(message: bytes) -> bytes:
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in message.split(b"\r\n")[:-1])


class FakePop3:
    """Enough RFC 1939 + STLS to exercise every client path; records what it received."""

    def __init__(self, tls: ssl.SSLContext | None) -> None:
        self.tls = tls
        self.received: list[bytes] = []
        self.deleted: set[int] = set()

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"+OK fake ready\r\n")
        secure = False
        while line := await reader.readline():
            self.received.append(line)
            verb, *args = line.decode().split()
            if verb == "CAPA":
                caps = ["USER", "TOP"] if secure else ["STLS", "TOP"]
                writer.write(b"+OK\r\n" + "".join(f"{c}\r\n" for c in caps).encode() + b".\r\n")
            elif verb == "STLS" and self.tls:
                writer.write(b"+OK begin TLS\r\n")
                await writer.drain()
                await writer.start_tls(self.tls)
                secure = True
            elif verb == "USER":
                writer.write(b"+OK\r\n" if secure else b"-ERR [AUTH] Plaintext authentication disallowed\r\n")
            elif verb == "PASS":
                writer.write(b"+OK logged in\r\n" if args == ["secret"] else b"-ERR [AUTH] Authentication failed.\r\n")
            elif verb == "STAT":
                writer.write(f"+OK {len(MESSAGES)} {sum(map(len, MESSAGES))}\r\n".encode())
            elif verb in ("TOP", "RETR"):
                message = MESSAGES[int(args[0]) - 1]
                body = message.split(b"\r\n\r\n")[0] + b"\r\n\r\n" if verb == "TOP" else message
                writer.write(b"+OK\r\n" + stuffed(body) + b".\r\n")
            elif verb == "DELE":
                self.deleted.add(int(args[0]))
                writer.write(b"+OK\r\n")
            elif verb == "SILENT":
                await asyncio.sleep(5)
            elif verb == "QUIT":
                writer.write(b"+OK bye\r\n")
                await writer.drain()
                break
            else:
                writer.write(b"-ERR unknown command\r\n")
            await writer.drain()
        writer.close()


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiFiles:
    directory = tmp_path_factory.mktemp("pki")
    ensure_pki(directory, "mail.example.test")
    return PkiFiles(directory)


@pytest.fixture
async def server(pki: PkiFiles) -> AsyncIterator[tuple[FakePop3, int, ssl.SSLContext]]:
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(pki.server_chain, pki.server_key)
    fake = FakePop3(server_tls)
    listener = await asyncio.start_server(fake.handle, "127.0.0.1", 0)
    client_tls = ssl.create_default_context(cafile=str(pki.root_cert))
    yield fake, listener.sockets[0].getsockname()[1], client_tls
    listener.close()
    await listener.wait_closed()


async def test_stls_login_find_and_retrieve(server: tuple[FakePop3, int, ssl.SSLContext]) -> None:
    fake, port, tls = server
    client = await POP3Client.connect("127.0.0.1", port)
    assert client.greeting.startswith(b"+OK")
    assert await client.capabilities() == ["STLS", "TOP"]
    await client.starttls(tls, "mail.example.test")
    assert await client.capabilities() == ["USER", "TOP"]
    await client.login("alice@example.test", "secret")
    assert await client.stat() == (2, sum(map(len, MESSAGES)))
    assert await client.top(2) == MESSAGES[1].split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert await client.retr(2) == MESSAGES[1]  # dot-unstuffed, byte for byte
    await client.dele(1)
    await client.quit()
    assert fake.deleted == {1}


async def test_plaintext_user_refused_and_error_carries_reply(server: tuple[FakePop3, int, ssl.SSLContext]) -> None:
    _, port, _ = server
    client = await POP3Client.connect("127.0.0.1", port)
    with pytest.raises(POP3Error, match="Plaintext authentication disallowed") as error:
        await client.login("alice@example.test", "secret")
    assert error.value.command == "USER"
    await client.quit()


async def test_wrong_password_is_masked_everywhere(server: tuple[FakePop3, int, ssl.SSLContext]) -> None:
    fake, port, tls = server
    client = await POP3Client.connect("127.0.0.1", port)
    await client.starttls(tls, "mail.example.test")
    with pytest.raises(POP3Error) as error:
        await client.login("alice@example.test", "hunter2")
    assert error.value.command == "PASS ***" and "Authentication failed" in str(error.value)
    assert "hunter2" not in str(client.stream.transcript) and "C: PASS ***" in str(client.stream.transcript)
    await client.quit()


async def test_certificate_for_another_name_is_refused(server: tuple[FakePop3, int, ssl.SSLContext]) -> None:
    _, port, tls = server
    client = await POP3Client.connect("127.0.0.1", port)
    with pytest.raises(ssl.SSLCertVerificationError):
        await client.starttls(tls, "other.example.test")


async def test_a_silent_server_times_out_naming_step_and_port(server: tuple[FakePop3, int, ssl.SSLContext]) -> None:
    _, port, _ = server
    client = await POP3Client.connect("127.0.0.1", port, timeout=0.3)
    with pytest.raises(StepTimeout, match=f"POP3 SILENT reply on port {port}"):
        await client.command("SILENT")
    await client.close()


async def test_non_pop3_greeting_is_an_error() -> None:
    async def smtp_like(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 not pop3\r\n")
        await writer.drain()
        writer.close()

    listener = await asyncio.start_server(smtp_like, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]
    with pytest.raises(POP3Error, match="greeting: 220 not pop3"):
        await POP3Client.connect("127.0.0.1", port)
    listener.close()


def test_unstuff() -> None:
    assert unstuff(b"..x") == b".x" and unstuff(b".") == b"." and unstuff(b"x.") == b"x."
