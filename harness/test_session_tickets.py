"""TLS session tickets: none on 465, one on the STARTTLS ports.

On 465 the server speaks first once TLS is up. A TLS 1.3 ticket written just before the
"220" greeting leaves the greeting waiting for the client's delayed ACK (Nagle): 40 ms
on every new connection. So 465 issues no ticket. On 25 and 587 the client speaks first
after STARTTLS, nothing waits behind the ticket, and resumption is worth keeping.
`benchmarks/handshake.py` measures the greeting delay itself."""

from __future__ import annotations

import asyncio
import ssl

import pytest

from harness.target import Target

pytestmark = pytest.mark.e2e


def tls13_context(target: Target) -> ssl.SSLContext:
    context = target.new_tls_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    return context


async def reply(reader: asyncio.StreamReader) -> bytes:
    """One SMTP reply, all its lines."""
    lines = b""
    while True:
        line = await asyncio.wait_for(reader.readline(), 10)
        if not line:
            raise ConnectionError(f"connection closed after {lines!r}")
        lines += line
        if line[3:4] != b"-":
            return lines


def ticket_issued(writer: asyncio.StreamWriter) -> bool:
    session = writer.get_extra_info("ssl_object").session
    return bool(session and session.has_ticket)


async def test_submissions_greets_without_a_ticket_in_front(target: Target) -> None:
    reader, writer = await asyncio.open_connection(
        target.host, target.port("submissions"), ssl=tls13_context(target), server_hostname=target.server_name)
    try:
        greeting = await reply(reader)  # a ticket sent before the greeting is processed by now
        assert greeting.startswith(b"220 "), greeting
        assert writer.get_extra_info("ssl_object").version() == "TLSv1.3"
        assert not ticket_issued(writer), "465 issued a TLS session ticket: the greeting waits behind it"
    finally:
        writer.close()


@pytest.mark.parametrize("service", ["smtp", "submission"])
async def test_starttls_ports_issue_a_ticket_for_resumption(target: Target, service: str) -> None:
    reader, writer = await asyncio.open_connection(target.host, target.port(service))
    try:
        assert (await reply(reader)).startswith(b"220 ")
        writer.write(b"EHLO client.example.net\r\n")
        assert b"STARTTLS" in await reply(reader)
        writer.write(b"STARTTLS\r\n")
        assert (await reply(reader)).startswith(b"220 ")
        await writer.start_tls(tls13_context(target), server_hostname=target.server_name)
        writer.write(b"EHLO client.example.net\r\n")
        assert (await reply(reader)).startswith(b"250")
        assert ticket_issued(writer), f"{service} issued no TLS session ticket after STARTTLS"
    finally:
        writer.close()
