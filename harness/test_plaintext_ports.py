"""Ports before TLS: 25 relays in without AUTH, nothing authenticates in cleartext,
implicit-TLS ports never greet in cleartext, and a port switched off is closed."""

from __future__ import annotations

import aiosmtplib
import pytest

from harness.checks import transport
from harness.imap import fetch_delivered
from harness.message import body_sha256, make_message
from harness.probes import (
    cleartext_client,
    imap_before_tls,
    pop3_before_tls,
    smtp_before_tls,
    smtp_envelope,
    tls_greeting,
)
from harness.target import Target

pytestmark = pytest.mark.e2e
CLEARTEXT_HELLO = {service: transport.CLEARTEXT_HELLO[protocol]
                   for service, protocol in (("submissions", "smtp"), ("imaps", "imap"), ("pop3s", "pop3"))}


async def test_smtp_25_accepts_unauthenticated_mail_for_a_local_user(target: Target) -> None:
    recipient = target.users[1]
    message = make_message("someone@sender.example", recipient.address, via="smtp")
    client = aiosmtplib.SMTP(hostname=target.host, port=target.port("smtp"), start_tls=False, timeout=10)
    async with client:
        errors, reply = await client.sendmail(message.sender, [message.recipient], message.raw)
    assert not errors and reply.startswith("2.0.0 Ok: queued"), (errors, reply)
    delivered = await fetch_delivered(target, recipient, message.token)
    assert body_sha256(delivered) == message.body_sha256


async def test_smtp_25_offers_starttls_and_never_auth(target: Target) -> None:
    result = await smtp_before_tls(target, "smtp", try_auth=False, upgrade=True)
    assert result.greeting.code == 220, result.transcript
    assert "STARTTLS" in result.ehlo.keywords, result.transcript
    assert "AUTH" not in result.ehlo.keywords, result.transcript
    assert result.ehlo_after_tls is not None, "STARTTLS was advertised but the upgrade failed\n" + result.transcript
    assert "AUTH" not in result.ehlo_after_tls.keywords, result.transcript
    assert "STARTTLS" not in result.ehlo_after_tls.keywords, result.transcript


@pytest.mark.parametrize("starttls", [False, True], ids=["cleartext", "starttls"])
async def test_smtp_25_refuses_relaying_to_another_domain(target: Target, starttls: bool) -> None:
    result = await smtp_envelope(
        target, "smtp", "someone@sender.example", "victim@elsewhere.example", starttls=starttls
    )
    assert result.mail.code == 250, result.transcript
    assert result.rcpt.code == 554 and "Relay access denied" in result.rcpt.text, result.transcript


async def test_smtp_25_refuses_an_unknown_local_recipient_at_rcpt(target: Target) -> None:
    result = await smtp_envelope(
        target, "smtp", "someone@sender.example", f"no-such-user@{target.mail_domain}", starttls=False
    )
    assert result.rcpt.code == 550 and "5.1.1" in result.rcpt.text, result.transcript


async def test_submission_587_offers_no_auth_before_starttls_and_refuses_it(target: Target) -> None:
    result = await smtp_before_tls(target, "submission", try_auth=True, upgrade=True)
    assert "STARTTLS" in result.ehlo.keywords, result.transcript
    assert "AUTH" not in result.ehlo.keywords, result.transcript
    assert result.auth_reply is not None
    # 530 "Must issue a STARTTLS command first"; 535 would mean the password was checked.
    assert result.auth_reply.code == 530, result.transcript
    assert result.ehlo_after_tls is not None, result.transcript
    assert "AUTH" in result.ehlo_after_tls.keywords, result.transcript
    assert "STARTTLS" not in result.ehlo_after_tls.keywords, result.transcript


@pytest.mark.parametrize("service", sorted(CLEARTEXT_HELLO))
async def test_implicit_tls_port_never_speaks_cleartext(target: Target, service: str) -> None:
    result = await cleartext_client(target, service, CLEARTEXT_HELLO[service])
    assert not result.refused, f"{service} is not listening\n{result.transcript}"
    assert result.greeting == b"", result.transcript
    assert not result.reply.startswith(transport.CLEARTEXT_GREETINGS), result.transcript
    # The same port does greet once TLS is up, so the silence above was not a dead port.
    assert (await tls_greeting(target, service)).startswith((b"220 ", b"* OK", b"+OK"))


async def assert_closed(target: Target, service: str) -> None:
    result = await cleartext_client(target, service, b"CAPA\r\n")
    assert result.closed, f"{service} is closed by policy but answers\n{result.transcript}"


async def test_imap_143_requires_starttls_before_login(target: Target) -> None:
    if not target.is_open("imap"):
        return await assert_closed(target, "imap")
    result = await imap_before_tls(target)
    assert {"STARTTLS", "LOGINDISABLED"} <= result.capabilities, result.transcript
    assert result.login.status in ("NO", "BAD"), result.transcript
    assert "AUTHENTICATIONFAILED" not in result.login.text.upper(), "password was checked in cleartext"
    assert result.capabilities_after_tls, "STARTTLS failed\n" + result.transcript
    assert "LOGINDISABLED" not in result.capabilities_after_tls, result.transcript
    assert "STARTTLS" not in result.capabilities_after_tls, result.transcript


async def test_pop3_110_refuses_user_pass_before_stls(target: Target) -> None:
    if not target.is_open("pop3"):
        return await assert_closed(target, "pop3")
    result = await pop3_before_tls(target)
    assert "STLS" in [c.upper() for c in result.capabilities], result.transcript
    assert "USER" not in [c.upper() for c in result.capabilities], result.transcript
    assert result.user_error is not None, "USER/PASS accepted in cleartext\n" + result.transcript
    assert "authentication failed" not in result.user_error.lower(), "password was checked in cleartext"
    assert result.capabilities_after_tls, "STLS failed\n" + result.transcript
    assert "USER" in [c.upper() for c in result.capabilities_after_tls], result.transcript


@pytest.mark.own_lab
@pytest.mark.parametrize("service", ["imap", "pop3"])
async def test_plaintext_port_switched_off_is_closed(plaintext_off_target: Target, service: str) -> None:
    hello = b"a1 CAPABILITY\r\n" if service == "imap" else b"CAPA\r\n"
    result = await cleartext_client(plaintext_off_target, service, hello)
    assert result.closed, result.transcript
    # ...while the implicit-TLS port of the same server still answers.
    greeting = await tls_greeting(plaintext_off_target, f"{service}s")
    assert greeting.startswith(b"* OK" if service == "imap" else b"+OK"), greeting
