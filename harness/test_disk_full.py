"""A full disk: the server answers 4xx instead of 250, and nothing it accepted is lost once
space returns. The lab runs with small size-limited volumes (harness/compose/small-volumes.yaml)
and a test fills them with one file, then deletes it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import aiosmtplib
import pytest

from harness.accounting import Fate, Sent, account
from harness.conftest import own_lab
from harness.lab import RunningLab
from harness.census import census, expected_by_recipient
from harness.message import TestMessage, body_sha256, make_message
from harness.readiness import wait_until_ready
from harness.smtp import relay_in, submit
from harness.target import Target

pytestmark = [pytest.mark.e2e, pytest.mark.own_lab]

SMALL_VOLUMES = Path(__file__).parent / "compose" / "small-volumes.yaml"
QUEUE_DIR, MAIL_DIR = "/var/spool/postfix", "/var/mail"
FILLER = "mailstack-test-filler"
BYTES_PER_BODY_LINE = 72  # make_message: "line nnnn " + 60 x + CRLF
SERVICES = ("submissions", "submission", "smtp")


@pytest.fixture
def small_disk_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    with own_lab(tmp_path_factory, "test", overrides=[SMALL_VOLUMES]) as lab:
        asyncio.run(wait_until_ready(lab.target))
        yield lab


def free_bytes(lab: RunningLab, service: str, directory: str) -> int:
    return int(lab.exec(service, "df", "-B1", "--output=avail", directory).split()[-1])


def fill(lab: RunningLab, service: str, directory: str, leave: int) -> None:
    """One file that leaves about `leave` bytes free on the directory's file system."""
    lab.exec(service, "rm", "-f", f"{directory}/{FILLER}")
    size = free_bytes(lab, service, directory) - leave
    if size > 0:
        lab.exec(service, "fallocate", "-l", str(size), f"{directory}/{FILLER}")


def make_room(lab: RunningLab, service: str, directory: str) -> None:
    lab.exec(service, "rm", "-f", f"{directory}/{FILLER}")


async def send(target: Target, service: str, message: TestMessage) -> str:
    if service == "smtp":
        return await relay_in(target, message)
    return await submit(target, service, target.users[0], message)


def new_message(target: Target, service: str, via: str, body_lines: int = 40) -> TestMessage:
    sender = "someone@sender.example" if service == "smtp" else target.users[0].address
    return make_message(sender, target.users[1].address, via=via, body_lines=body_lines)


def reply_code(error: BaseException) -> int:
    return getattr(error, "code", 0)


async def all_delivered_once(target: Target, accepted: list[tuple[str, TestMessage]], deadline_s: float) -> None:
    found = await census(target, expected_by_recipient([m for _, m in accepted]), deadline_s)
    sent = [Sent(m.token, m.recipient, s, body_sha256(m.raw), time.monotonic()) for s, m in accepted]
    result = account(sent, found.imap, found.pop3)
    assert result.count(Fate.DELIVERED) == len(accepted), {f.value: result.count(f) for f in Fate}


async def test_full_queue_disk_answers_4xx_and_loses_nothing(small_disk_lab: RunningLab) -> None:
    lab, target = small_disk_lab, small_disk_lab.target
    limit = target.message_size_limit
    accepted: list[tuple[str, TestMessage]] = []

    # Less free than 1.5 x message_size_limit: every new transaction is refused at MAIL FROM.
    fill(lab, "postfix", QUEUE_DIR, leave=limit)
    for service in SERVICES:
        with pytest.raises(aiosmtplib.SMTPResponseException) as refused:
            await send(target, service, new_message(target, service, f"queue-full-{service}"))
        assert 400 <= refused.value.code < 500, refused.value

    # Enough for that check, not for everything: large messages at once fill the disk during
    # DATA. Each one gets 250 or a 4xx; never a 5xx, never a 250 for a message not kept.
    # Relayed on 25 while Dovecot is stopped, so no queue file is delivered (and its space
    # freed) while the others are still being written.
    await asyncio.to_thread(lab.stop, "dovecot")
    fill(lab, "postfix", QUEUE_DIR, leave=int(1.6 * limit))
    lines = int(0.6 * limit / BYTES_PER_BODY_LINE)
    big = [("smtp", new_message(target, "smtp", f"big-{n}", lines)) for n in range(4)]
    replies = await asyncio.gather(*(send(target, s, m) for s, m in big), return_exceptions=True)
    failures = [r for r in replies if isinstance(r, BaseException)]
    assert failures, "four messages of 0.6 x the limit fit in 1.6 x the limit?"
    assert all(400 <= reply_code(f) < 500 for f in failures), failures
    accepted += [item for item, reply in zip(big, replies) if not isinstance(reply, BaseException)]

    # Space returns: mail flows again, and all that got 250 arrives once.
    make_room(lab, "postfix", QUEUE_DIR)
    await asyncio.to_thread(lab.start, "dovecot")
    await wait_until_ready(target)
    for service in SERVICES:
        message = new_message(target, service, f"after-room-{service}")
        await send(target, service, message)
        accepted.append((service, message))
    await all_delivered_once(target, accepted, deadline_s=60)


async def test_full_mail_store_keeps_mail_queued_until_space_returns(small_disk_lab: RunningLab) -> None:
    lab, target = small_disk_lab, small_disk_lab.target
    fill(lab, "dovecot", MAIL_DIR, leave=0)

    # The queue has room, so Postfix accepts; LMTP cannot write, so the mail waits in the queue.
    accepted = [(service, new_message(target, service, f"store-full-{service}")) for service in SERVICES * 2]
    for service, message in accepted:
        await send(target, service, message)
    deferred: list[dict[str, object]] = []
    for _ in range(100):
        queue = [json.loads(line) for line in lab.exec("postfix", "postqueue", "-j").splitlines()]
        deferred = [entry for entry in queue if entry["queue_name"] == "deferred"]
        if len(deferred) == len(accepted):
            break
        await asyncio.sleep(0.2)
    assert len(deferred) == len(accepted), deferred
    reasons = {r["delay_reason"] for entry in deferred for r in entry["recipients"]}  # type: ignore[attr-defined]
    assert all("dovecot" in reason for reason in reasons), reasons
    # `make queue` says why, and shows the cause from Dovecot's log.
    explained = lab.stack("queue")
    assert "Dovecot could not store the message" in explained, explained
    assert "No space left on device" in explained, explained

    make_room(lab, "dovecot", MAIL_DIR)
    await all_delivered_once(target, accepted, deadline_s=60)
