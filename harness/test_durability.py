"""Accepted mail is not lost when the mail store is down: it waits in the queue."""

from __future__ import annotations

import asyncio
import json
import time

import aiosmtplib
import pytest

from harness.imap import fetch_delivered
from harness.lab import RunningLab
from harness.message import body_sha256, make_message
from harness.readiness import wait_until_ready
from harness.faultkit import submissions_all_succeed

SASL_RENEWED = "SASL connections (stopped or restarted): smtpd processes reloaded"


async def queue_empty(lab: RunningLab, timeout_s: float = 20.0) -> None:
    give_up = time.monotonic() + timeout_s
    while lab.exec("postfix", "postqueue", "-j").strip():
        assert time.monotonic() < give_up, "Postfix's queue did not empty"
        await asyncio.sleep(0.2)

pytestmark = [pytest.mark.e2e, pytest.mark.own_lab]


async def test_mail_accepted_while_dovecot_is_down_is_delivered_when_it_returns(fresh_lab: RunningLab) -> None:
    target = fresh_lab.target
    recipient = target.users[1]
    # Idle smtpd processes now hold SASL connections to this Dovecot, which are about to die.
    await submissions_all_succeed(target)
    await queue_empty(fresh_lab)
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
    # The health check saw the closed SASL connections and reloaded Postfix: the very first
    # logins after Dovecot's return work, on every smtpd process.
    assert SASL_RENEWED in fresh_lab.logs("postfix")
    await submissions_all_succeed(target)
    assert body_sha256(delivered) == message.body_sha256
