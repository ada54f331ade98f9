"""Authentication on 465 and 587: a wrong password gets 535 and sends nothing; unknown
local recipients are refused at RCPT; without AUTH nothing is accepted for delivery."""

from __future__ import annotations

import aiosmtplib
import pytest

from harness.imap import open_imaps
from harness.message import make_message
from harness.probes import smtp_envelope
from harness.smtp import open_submission, submit
from harness.target import Target

pytestmark = pytest.mark.e2e
SUBMISSION = ["submissions", "submission"]


@pytest.mark.parametrize("service", SUBMISSION)
async def test_wrong_password_gets_535_and_sends_nothing(target: Target, service: str) -> None:
    sender, recipient = target.users[0], target.users[1]
    refused = make_message(sender.address, recipient.address, via=f"{service}-wrong-password")
    client = await open_submission(target, service)
    try:
        await client.ehlo()
        # One mechanism, one attempt (login() would try each advertised mechanism in turn).
        with pytest.raises(aiosmtplib.SMTPAuthenticationError) as failed:
            await client.auth_plain(sender.address, sender.password + "-wrong")
        assert failed.value.code == 535
        # The session stays usable, and still refuses to take mail without AUTH.
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused):
            await client.sendmail(refused.sender, [refused.recipient], refused.raw)
    finally:
        await client.quit()

    # A barrier: a good message sent afterwards on the same path arrives; the refused one
    # must not be there when it does (same queue, so no sleep is needed to be sure).
    barrier = make_message(sender.address, recipient.address, via=f"{service}-barrier")
    await submit(target, service, sender, barrier)
    imap = await open_imaps(target, recipient)
    try:
        await imap.wait_for(barrier.token, 20)
        assert await imap.find(refused.token) == []
    finally:
        await imap.logout()


@pytest.mark.parametrize("service", SUBMISSION)
async def test_unknown_local_recipient_is_refused_at_rcpt(target: Target, service: str) -> None:
    sender = target.users[0]
    message = make_message(sender.address, f"no-such-user@{target.mail_domain}", via=service)
    client = await open_submission(target, service)
    try:
        await client.login(sender.address, sender.password)
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await client.sendmail(message.sender, [message.recipient], message.raw)
        assert [r.code for r in refused.value.recipients] == [550]
    finally:
        await client.quit()


@pytest.mark.parametrize("service", SUBMISSION)
async def test_submission_without_auth_is_refused(target: Target, service: str) -> None:
    """Refused with RFC 4954's 530 5.7.0 and a text that says what is missing."""
    result = await smtp_envelope(
        target, service, target.users[0].address, target.users[1].address, starttls=True
    )
    assert result.rcpt.code == 530 and "Authentication required" in result.rcpt.text, result.transcript


async def test_authenticated_user_cannot_send_as_another_user(target: Target) -> None:
    alice, bob = target.users[0], target.users[1]
    forged = make_message(bob.address, alice.address, via="forged-sender")
    client = await open_submission(target, "submissions")
    try:
        await client.login(alice.address, alice.password)
        with pytest.raises(aiosmtplib.SMTPRecipientsRefused) as refused:
            await client.sendmail(forged.sender, [forged.recipient], forged.raw)
        assert refused.value.recipients[0].code == 553
    finally:
        await client.quit()


@pytest.mark.parametrize("starttls", [False, True], ids=["cleartext", "starttls"])
async def test_port_25_refuses_our_own_domain_as_sender_without_login(target: Target, starttls: bool) -> None:
    # Another server may deliver to our users on 25, but not in our users' names.
    forged = await smtp_envelope(target, "smtp", target.users[0].address, target.users[1].address, starttls=starttls)
    assert 500 <= forged.rcpt.code < 600 and "465 or 587" in forged.rcpt.text, forged.transcript
    stranger = await smtp_envelope(target, "smtp", "someone@sender.example", target.users[1].address, starttls=starttls)
    assert stranger.rcpt.code == 250, stranger.transcript
