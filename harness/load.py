"""Load with exactly-once accounting: send N unique messages, watch the mailboxes over IMAPS
while sending (for latency), then count every copy over IMAPS and POP3S (harness.census) and
give each message a fate.

Sending and watching run together, so latency is 250-after-DATA to visible in IMAP. A fault
test injects its fault while `run` is going, through the progress callbacks. Only
127.0.0.1 is ever a target (Target enforces it); every step has a timeout, and the whole
run is bounded by deadline_s after the last message is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aiosmtplib

from harness.accounting import Accounting, Fate, Sent, account, percentile
from harness.census import MailboxWatcher, census, expected_by_recipient
from harness.errors import HarnessError
from harness.message import TestMessage, make_message
from harness.smtp import close_session, open_session, send_on
from harness.target import Account, Target

LOAD_SERVICES = ("submissions", "submission", "smtp")
RELAY_SENDER = "load@sender.example"  # port 25 mail comes from another domain, unauthenticated
DUPLICATE_GRACE_S = 1.0  # after the last expected message, wait this long for late copies
PERCENTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))


@dataclass(frozen=True)
class Planned:
    service: str
    sender: Account | None  # None: relayed in on 25 without AUTH
    message: TestMessage


def plan_messages(
    target: Target, count: int, services: Sequence[str], *, authenticate: bool = True, body_lines: int = 40
) -> list[Planned]:
    """count unique messages; services and sender/recipient pairs in rotation. Without
    authenticate, nothing logs in (a baseline server that takes mail on 465 without AUTH)."""
    unknown = sorted(set(services) - set(LOAD_SERVICES))
    if unknown or not services:
        raise ValueError(f"load services must be among {', '.join(LOAD_SERVICES)}, got {', '.join(unknown) or 'none'}")
    pairs = [(a, b) for a in target.users for b in target.users if a is not b] or [(target.users[0],) * 2]
    plan = []
    for number, service, (sender, recipient) in zip(range(count), itertools.cycle(services), itertools.cycle(pairs)):
        account = None if service == "smtp" or not authenticate else sender
        address = RELAY_SENDER if account is None else account.address
        message = make_message(address, recipient.address, via=f"load-{service}-{number}", body_lines=body_lines)
        plan.append(Planned(service, account, message))
    return plan


@dataclass
class Progress:
    """Callbacks while a load runs (a display, or a fault test waiting for its moment)."""

    on_sent: Callable[[Sent], None] = lambda sent: None
    on_seen: Callable[[str], None] = lambda token: None


SEND_ERRORS = (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError, HarnessError)


def _sent(item: Planned, error: BaseException | None = None) -> Sent:
    message = item.message
    digest = hashlib.sha256(message.body).hexdigest()
    if error is not None:
        return Sent(message.token, message.recipient, item.service, digest, None, f"{type(error).__name__}: {error}")
    return Sent(message.token, message.recipient, item.service, digest, time.monotonic())


async def send_one(target: Target, item: Planned) -> Sent:
    """One message on a new connection (TLS handshake, AUTH, transaction, QUIT)."""
    try:
        client = await open_session(target, item.service, item.sender)
        try:
            await send_on(client, item.message)
        finally:
            await close_session(client)
    except SEND_ERRORS as exc:
        return _sent(item, exc)
    return _sent(item)


class SessionKeeper:
    """Open sessions of one sending worker, one per (service, login), reused message after
    message; a session that fails is dropped and the next message opens a new one."""

    def __init__(self, target: Target) -> None:
        self.target = target
        self.sessions: dict[tuple[str, str], aiosmtplib.SMTP] = {}

    async def send(self, item: Planned) -> Sent:
        key = (item.service, item.sender.address if item.sender else "")
        try:
            client = self.sessions.get(key)
            if client is None or not client.is_connected:
                client = self.sessions[key] = await open_session(self.target, item.service, item.sender)
            await send_on(client, item.message)
        except SEND_ERRORS as exc:
            dropped = self.sessions.pop(key, None)
            if dropped is not None:
                dropped.close()
            return _sent(item, exc)
        return _sent(item)

    async def close(self) -> None:
        await asyncio.gather(*(close_session(c) for c in self.sessions.values()))


async def send_all(
    target: Target,
    planned: Sequence[Planned],
    concurrency: int,
    on_sent: Callable[[Sent], None],
    rate: float | None = None,
    keep_open: bool = False,
) -> list[Sent]:
    """Submit every planned message, concurrency sessions at a time: a new connection each,
    or with keep_open, concurrency workers that each keep their sessions open. With rate,
    message i starts no sooner than i/rate seconds in (so a load spans a fault)."""
    started = time.monotonic()
    results: list[Sent | None] = [None] * len(planned)

    async def paced(number: int) -> None:
        if rate:
            await asyncio.sleep(max(0.0, started + number / rate - time.monotonic()))

    async def worker(first: int) -> None:
        keeper = SessionKeeper(target) if keep_open else None
        try:
            for number in range(first, len(planned), concurrency):
                await paced(number)
                item = planned[number]
                sent = await (keeper.send(item) if keeper else send_one(target, item))
                results[number] = sent
                on_sent(sent)
        finally:
            if keeper:
                await keeper.close()

    await asyncio.gather(*(worker(first) for first in range(min(concurrency, len(planned)))))
    return [sent for sent in results if sent is not None]


@dataclass(frozen=True)
class LoadResult:
    sent: list[Sent]
    accounting: Accounting
    send_seconds: float  # first connection to last reply
    deliver_seconds: float  # start to the last message seen over IMAP

    @property
    def accepted(self) -> int:
        return sum(1 for m in self.sent if m.accepted_at is not None)

    @property
    def accepted_per_s(self) -> float:
        return self.accepted / max(self.send_seconds, 1e-6)

    @property
    def delivered_per_s(self) -> float:
        return self.accounting.count(Fate.DELIVERED) / max(self.deliver_seconds, 1e-6)

    def latency_ms(self) -> dict[str, float]:
        return {label: 1000 * percentile(self.accounting.latencies_s, f) for label, f in PERCENTILES}

    def errors(self) -> dict[str, int]:
        """Distinct client-side errors of refused messages, most frequent first."""
        counts: dict[str, int] = {}
        for message in self.sent:
            if message.error:
                counts[message.error] = counts.get(message.error, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: -kv[1]))

    def to_json(self) -> dict[str, object]:
        return {
            "count": len(self.sent),
            "accepted": self.accepted,
            "send_seconds": round(self.send_seconds, 3),
            "deliver_seconds": round(self.deliver_seconds, 3),
            "accepted_per_s": round(self.accepted_per_s, 1),
            "delivered_per_s": round(self.delivered_per_s, 1),
            "fates": {fate.value: self.accounting.count(fate) for fate in Fate},
            "latency_ms": {k: round(v, 1) for k, v in self.latency_ms().items()},
            "errors": self.errors(),
            "messages": [
                {"token": m.token, "service": m.service, "recipient": m.recipient,
                 "fate": self.accounting.fates[m.token].value, "error": m.error}
                for m in self.sent
            ],
        }


async def run(
    target: Target,
    planned: Sequence[Planned],
    concurrency: int,
    deadline_s: float,
    progress: Progress | None = None,
    during: Callable[[], Awaitable[None]] | None = None,
    rate: float | None = None,
    keep_open: bool = False,
) -> LoadResult:
    """Send everything, read it back, account for each message.

    deadline_s bounds the wait for delivery after the last message was sent. `during`, if
    given, runs alongside the load (a fault, a flood of bad input) and must end by itself;
    rate (messages/s) spreads the sending out so that it spans such a fault; keep_open
    sends on sessions kept open per worker instead of a new connection per message.
    """
    progress = progress or Progress()
    expected = expected_by_recipient([item.message for item in planned])
    accounts = {a.address: a for a in target.users}
    watchers = await asyncio.gather(*(MailboxWatcher.open(target, accounts[r], t) for r, t in expected.items()))
    refused: set[str] = set()
    sending_done_at: float | None = None
    started = time.monotonic()

    def on_sent(sent: Sent) -> None:
        if sent.accepted_at is None:
            refused.add(sent.token)
        progress.on_sent(sent)

    def give_up_at() -> float:
        return float("inf") if sending_done_at is None else sending_done_at + deadline_s

    async def send() -> list[Sent]:
        nonlocal sending_done_at
        try:
            return await send_all(target, planned, concurrency, on_sent, rate, keep_open)
        finally:
            sending_done_at = time.monotonic()

    jobs = [send(), *(w.follow(give_up_at, refused, progress.on_seen) for w in watchers)]
    if during is not None:
        jobs.append(during())
    sent, *_ = await asyncio.gather(*jobs)
    first_seen = {token: at for w in watchers for token, at in w.first_seen.items()}
    # The accounting comes from whole-mailbox scans, not from what the watcher saw.
    await asyncio.sleep(DUPLICATE_GRACE_S)
    final = await census(target, expected, starts={w.account.address: w.start for w in watchers})
    last_seen = max(first_seen.values(), default=time.monotonic())
    return LoadResult(
        sent=sent,
        accounting=account(sent, final.imap, final.pop3, first_seen=first_seen),
        send_seconds=(sending_done_at or time.monotonic()) - started,
        deliver_seconds=max(last_seen - started, 1e-6),
    )
