"""Load with exactly-once accounting: send N unique messages, read every mailbox back
over IMAPS (live, for latency) and POP3S (at the end), and give each message a fate.

Sending and reading run together, so latency is 250-after-DATA to visible in IMAP. A fault
test injects its fault while `run` is going, through the progress callbacks. Only
127.0.0.1 is ever a target (Target enforces it); every step has a timeout, and the whole
run is bounded by deadline_s after the last message is sent.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import aioimaplib
import aiosmtplib

from harness.accounting import Accounting, Fate, Seen, Sent, account, percentile
from harness.errors import HarnessError
from harness.imap import ImapSession, open_imaps
from harness.mailbox import open_pop3s
from harness.message import ID_HEADER, TestMessage, header, make_message, split_message
from harness.pop3 import POP3Error
from harness.smtp import relay_in, submit
from harness.target import Account, Target

LOAD_SERVICES = ("submissions", "submission", "smtp")
RELAY_SENDER = "load@sender.example"  # port 25 mail comes from another domain, unauthenticated
POLL_INTERVAL_S = 0.05
RECONNECT_PAUSE_S = 0.5
DUPLICATE_GRACE_S = 1.0  # after the last expected message, look once more for late copies
PERCENTILES = (("p50", 0.5), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))
_UID = re.compile(rb"UID (\d+)")
_UIDNEXT = re.compile(rb"UIDNEXT (\d+)")


@dataclass(frozen=True)
class Planned:
    service: str
    sender: Account | None  # None: relayed in on 25 without AUTH
    message: TestMessage


def plan_messages(target: Target, count: int, services: Sequence[str]) -> list[Planned]:
    """count unique messages; services and sender/recipient pairs in rotation."""
    unknown = sorted(set(services) - set(LOAD_SERVICES))
    if unknown or not services:
        raise ValueError(f"load services must be among {', '.join(LOAD_SERVICES)}, got {', '.join(unknown) or 'none'}")
    pairs = [(a, b) for a in target.users for b in target.users if a is not b] or [(target.users[0],) * 2]
    plan = []
    for number, service, (sender, recipient) in zip(range(count), itertools.cycle(services), itertools.cycle(pairs)):
        account = None if service == "smtp" else sender
        address = RELAY_SENDER if account is None else account.address
        plan.append(Planned(service, account, make_message(address, recipient.address, via=f"load-{service}-{number}")))
    return plan


@dataclass
class Progress:
    """Callbacks while a load runs (a display, or a fault test waiting for its moment)."""

    on_sent: Callable[[Sent], None] = lambda sent: None
    on_seen: Callable[[str], None] = lambda token: None


async def send_one(target: Target, item: Planned) -> Sent:
    message = item.message
    digest = hashlib.sha256(message.body).hexdigest()
    try:
        if item.sender is None:
            await relay_in(target, message)
        else:
            await submit(target, item.service, item.sender, message)
    except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError, HarnessError) as exc:
        return Sent(message.token, message.recipient, item.service, digest, None, f"{type(exc).__name__}: {exc}")
    return Sent(message.token, message.recipient, item.service, digest, time.monotonic())


async def send_all(
    target: Target,
    planned: Sequence[Planned],
    concurrency: int,
    on_sent: Callable[[Sent], None],
    rate: float | None = None,
) -> list[Sent]:
    """Submit every planned message, concurrency sessions at a time, a new connection each;
    with rate, message i starts no sooner than i/rate seconds in (so a load spans a fault)."""
    gate = asyncio.Semaphore(concurrency)
    started = time.monotonic()

    async def one(number: int, item: Planned) -> Sent:
        if rate:
            await asyncio.sleep(max(0.0, started + number / rate - time.monotonic()))
        async with gate:
            sent = await send_one(target, item)
        on_sent(sent)
        return sent

    return list(await asyncio.gather(*(one(number, item) for number, item in enumerate(planned))))


class MailboxWatcher:
    """One IMAPS session per recipient, opened before sending starts (so only mail that
    arrives from then on is fetched), polling for new UIDs until every expected token came.
    A lost session (Dovecot restarting) is opened again; UIDs carry on where they were."""

    def __init__(self, target: Target, account: Account, tokens: set[str]) -> None:
        self.target, self.account, self.tokens = target, account, tokens
        self.seen: dict[str, Seen] = {}
        self.reconnects = 0
        self.session: ImapSession | None = None
        self.last_uid = 0

    @classmethod
    async def open(cls, target: Target, account: Account, tokens: set[str]) -> MailboxWatcher:
        watcher = cls(target, account, tokens)
        watcher.session = await open_imaps(target, account)
        status = await watcher.session._call("STATUS", watcher.session._client.status("INBOX", "(UIDNEXT)"))
        lines = [line for line in status.lines if isinstance(line, bytes)]
        found = [int(m.group(1)) for line in lines for m in [_UIDNEXT.search(line)] if m]
        watcher.last_uid = (found[0] if found else 1) - 1
        return watcher

    async def follow(self, give_up_at: Callable[[], float], refused: set[str], on_seen: Callable[[str], None]) -> None:
        waiting = set(self.tokens)
        grace_until: float | None = None
        try:
            while time.monotonic() < give_up_at():
                waiting -= refused
                if not waiting:
                    grace_until = grace_until or time.monotonic() + DUPLICATE_GRACE_S
                    if time.monotonic() > grace_until:
                        break
                try:
                    new = await self._poll()
                except (HarnessError, OSError, asyncio.TimeoutError, aioimaplib.Abort):
                    await self._reconnect()
                    continue
                for raw in new:
                    token = header(raw, ID_HEADER)
                    if token not in self.tokens:
                        continue
                    entry = self.seen.setdefault(token, Seen(first_seen_at=time.monotonic()))
                    entry.copies += 1
                    entry.body_sha256s.append(hashlib.sha256(split_message(raw)[1]).hexdigest())
                    if token in waiting:
                        waiting.discard(token)
                        on_seen(token)
                await asyncio.sleep(POLL_INTERVAL_S)
        finally:
            if self.session is not None:
                await self.session.logout()

    async def _poll(self) -> list[bytes]:
        if self.session is None:
            self.session = await open_imaps(self.target, self.account)
        await self.session._call("NOOP", self.session._client.noop())
        return await self._fetch_new()

    async def _reconnect(self) -> None:
        if self.session is not None:
            await self.session.logout()
        self.session = None
        self.reconnects += 1
        await asyncio.sleep(RECONNECT_PAUSE_S)

    async def _fetch_new(self) -> list[bytes]:
        """Messages above the last UID seen: UIDs first, then only new bodies ("n:*"
        always matches the newest message, so a direct body fetch would repeat it)."""
        assert self.session is not None
        client = self.session._client
        listing = await self.session._call("UID FETCH", client.uid("fetch", f"{self.last_uid + 1}:*", "(UID)"))
        uids = {int(m.group(1)) for line in listing.lines if isinstance(line, bytes) for m in [_UID.search(line)] if m}
        new = sorted(uid for uid in uids if uid > self.last_uid)
        if not new:
            return []
        response = await self.session._call("UID FETCH", client.uid("fetch", ",".join(map(str, new)), "(UID BODY.PEEK[])"))
        found: list[bytes] = []
        uid = None
        for line in response.lines:  # aioimaplib: literals are bytearray, other lines bytes
            if isinstance(line, bytearray):
                if uid is not None and uid > self.last_uid:
                    found.append(bytes(line))
                uid = None
            else:
                match = _UID.search(line)
                uid = int(match.group(1)) if match else None
        self.last_uid = max([self.last_uid, *new])
        return found



async def pop3_census(target: Target, expected: dict[str, set[str]]) -> dict[str, Seen]:
    """Every expected token found in each recipient's mailbox over POP3S (headers by TOP,
    whole message by RETR only for ours); nothing is deleted."""
    seen: dict[str, Seen] = {}
    accounts = {a.address: a for a in target.users}

    async def one(address: str, tokens: set[str]) -> None:
        client = await open_pop3s(target, accounts[address], timeout=30)
        try:
            count, _size = await client.stat()
            for number in range(1, count + 1):
                try:
                    token = header(await client.top(number, 0), ID_HEADER)
                    if token not in tokens:
                        continue
                    raw = await client.retr(number)
                except POP3Error:
                    continue  # expunged by another session since STAT
                entry = seen.setdefault(token, Seen(first_seen_at=time.monotonic()))
                entry.copies += 1
                entry.body_sha256s.append(hashlib.sha256(split_message(raw)[1]).hexdigest())
            await client.quit()
        finally:
            await client.close()

    await asyncio.gather(*(one(address, tokens) for address, tokens in expected.items()))
    return seen


async def census(
    target: Target, expected: dict[str, set[str]], deadline_s: float
) -> tuple[dict[str, Seen], dict[str, Seen]]:
    """Both mailbox views of the expected tokens, over the whole INBOX (not only new mail):
    IMAPS, waiting up to deadline_s for all of them, then POP3S. For mail sent earlier,
    e.g. before a restart or while the disk was full."""
    accounts = {a.address: a for a in target.users}
    watchers = []
    for address, tokens in expected.items():
        watcher = MailboxWatcher(target, accounts[address], tokens)
        watchers.append(watcher)
    give_up = time.monotonic() + deadline_s
    await asyncio.gather(*(w.follow(lambda: give_up, set(), lambda token: None) for w in watchers))
    imap_seen = {token: seen for w in watchers for token, seen in w.seen.items()}
    return imap_seen, await pop3_census(target, expected)


def expected_by_recipient(messages: Sequence[TestMessage]) -> dict[str, set[str]]:
    expected: dict[str, set[str]] = {}
    for message in messages:
        expected.setdefault(message.recipient, set()).add(message.token)
    return expected


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
) -> LoadResult:
    """Send everything, read it back, account for each message.

    deadline_s bounds the wait for delivery after the last message was sent. `during`, if
    given, runs alongside the load (a fault, a flood of bad input) and must end by itself;
    rate (messages/s) spreads the sending out so that it spans such a fault.
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
            return await send_all(target, planned, concurrency, on_sent, rate)
        finally:
            sending_done_at = time.monotonic()

    jobs = [send(), *(w.follow(give_up_at, refused, progress.on_seen) for w in watchers)]
    if during is not None:
        jobs.append(during())
    sent, *_ = await asyncio.gather(*jobs)
    imap_seen = {token: seen for w in watchers for token, seen in w.seen.items()}
    pop3_seen = await pop3_census(target, expected)
    last_seen = max((s.first_seen_at for s in imap_seen.values()), default=time.monotonic())
    return LoadResult(
        sent=sent,
        accounting=account(sent, imap_seen, pop3_seen),
        send_seconds=(sending_done_at or time.monotonic()) - started,
        deliver_seconds=max(last_seen - started, 1e-6),
    )
