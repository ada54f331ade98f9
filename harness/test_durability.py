"""Accepted mail is not lost when the mail store is down: it waits in the queue."""

from __future__ import annotations

import json

import aiosmtplib
import pytest

from harness.imap import fetch_delivered
from harness.lab import RunningLab
from harness.message import body_sha256, make_message
from harness.readiness import wait_until_ready

pytestmark = [pytest.mark.e2e, pytest.mark.own_lab]


async def test_mail_accepted_while_dovecot_is_down_is_delivered_when_it_returns(fresh_lab: RunningLab) -> None:
    target = fresh_lab.target
    recipient = target.users[1]
    fresh_lab.stop("dovecot")

    message = make_message("someone@sender.example", recipient.address, via="smtp-dovecot-down")
    async with aiosmtplib.SMTP(hostname=target.host, port=target.port("smtp"), start_tls=False, timeout=10) as client:
        errors, reply = await client.sendmail(message.sender, [message.recipient], message.raw)
    assert not errors and reply.startswith("2.0.0 Ok: queued"), reply

    # Deferred, with a reason a person can act on; never bounced.
    queued = [json.loads(line) for line in fresh_lab.exec("postfix", "postqueue", "-j").splitlines()]
    assert len(queued) == 1, queued
    reason = queued[0]["recipients"][0].get("delay_reason", "")
    assert queued[0]["queue_name"] in ("deferred", "active", "incoming"), queued
    assert reason == "" or "dovecot" in reason.lower(), reason

    fresh_lab.start("dovecot")
    await wait_until_ready(target)
    # No flush: Postfix's own retry (queue_retry, 10 s and doubling) delivers it.
    delivered = await fetch_delivered(target, recipient, message.token, 60)
    assert body_sha256(delivered) == message.body_sha256
