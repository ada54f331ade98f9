"""Exactly-once accounting under load: send N unique messages, read every mailbox back,
and say for each message whether it was delivered once, duplicated, missing or corrupted.

The accounting (`account`, `percentile`) is pure and unit-tested; `send_all` and `watch`
talk to the server. Only 127.0.0.1 is ever a target (Target enforces it).
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum

import aiosmtplib

from harness.imap import ImapSession, open_imaps
from harness.message import ID_HEADER, TestMessage, header, make_message, split_message
from harness.smtp import submit
from harness.target import Account, Target

_UID = re.compile(rb"UID (\d+)")
DUPLICATE_GRACE_S = 1.0  # after the last expected message, look once more for late copies


class Fate(StrEnum):
    DELIVERED = "delivered once"
    DUPLICATED = "duplicated"
    MISSING = "missing"
    CORRUPTED = "corrupted"
    REFUSED = "refused (no 250)"  # the client saw the failure: SMTP allows it to be absent


@dataclass(frozen=True)
class Sent:
    token: str
    recipient: str
    service: str
    body_sha256: str
    accepted_at: float | None  # monotonic time of the 250 after DATA; None when refused
    error: str = ""


@dataclass
class Seen:
    copies: int = 0
    first_seen_at: float = 0.0
    body_sha256s: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Accounting:
    fates: dict[str, Fate]
    latencies_s: list[float]  # 250 -> visible over IMAP, for messages delivered once

    def count(self, fate: Fate) -> int:
        return sum(1 for f in self.fates.values() if f is fate)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5 - 1e-9)))
    return ordered[rank - 1]


def account(sent: Sequence[Sent], seen: dict[str, Seen]) -> Accounting:
    """Every sent message gets one fate; latency counts only clean single deliveries."""
    fates: dict[str, Fate] = {}
    latencies: list[float] = []
    for message in sent:
        copy = seen.get(message.token)
        if copy is None or copy.copies == 0:
            fates[message.token] = Fate.REFUSED if message.accepted_at is None else Fate.MISSING
        elif any(digest != message.body_sha256 for digest in copy.body_sha256s):
            fates[message.token] = Fate.CORRUPTED
        elif copy.copies > 1:
            fates[message.token] = Fate.DUPLICATED
        else:
            fates[message.token] = Fate.DELIVERED
            if message.accepted_at is not None:
                latencies.append(max(0.0, copy.first_seen_at - message.accepted_at))
    return Accounting(fates, latencies)


@dataclass(frozen=True)
class Planned:
    service: str
    sender: Account
    message: TestMessage


def plan_messages(target: Target, count: int, services: Sequence[str]) -> list[Planned]:
    """count unique messages; services and sender/recipient pairs in rotation."""
    pairs = [(a, b) for a in target.users for b in target.users if a is not b]
    return [
        Planned(service, sender, make_message(sender.address, recipient.address, via=f"load-{service}-{number}"))
        for number, service, (sender, recipient) in zip(range(count), itertools.cycle(services), itertools.cycle(pairs))
    ]


async def send_all(
    target: Target, planned: Sequence[Planned], concurrency: int, refused: set[str] | None = None
) -> list[Sent]:
    """Submit every planned message, concurrency sessions at a time, a new connection each.
    Tokens of messages that got no 250 are added to refused as soon as that is known."""
    refused = refused if refused is not None else set()
    gate = asyncio.Semaphore(concurrency)

    async def one(item: Planned) -> Sent:
        message = item.message
        digest = hashlib.sha256(message.body).hexdigest()
        async with gate:
            try:
                await submit(target, item.service, item.sender, message)
            except (aiosmtplib.SMTPException, OSError, asyncio.TimeoutError) as exc:
                refused.add(message.token)
                return Sent(message.token, message.recipient, item.service, digest, None, f"{type(exc).__name__}: {exc}")
        return Sent(message.token, message.recipient, item.service, digest, time.monotonic())

    return list(await asyncio.gather(*(one(item) for item in planned)))


async def _fetch_new(session: ImapSession, after_uid: int) -> list[tuple[int, bytes]]:
    """(uid, raw message) for messages with a UID above after_uid.

    UIDs first, bodies only for new ones: "n:*" always matches the newest message, so
    fetching bodies directly would download it again on every poll.
    """
    listing = await session._call("UID FETCH", session._client.uid("fetch", f"{after_uid + 1}:*", "(UID)"))
    uids = {int(m.group(1)) for line in listing.lines if isinstance(line, bytes) for m in [_UID.search(line)] if m}
    new = sorted(uid for uid in uids if uid > after_uid)
    if not new:
        return []
    uid_set = ",".join(str(uid) for uid in new)
    response = await session._call("UID FETCH", session._client.uid("fetch", uid_set, "(UID BODY.PEEK[])"))
    found: list[tuple[int, bytes]] = []
    uid = None
    for line in response.lines:  # aioimaplib: literals are bytearray, other lines bytes
        if isinstance(line, bytearray):
            if uid is not None and uid > after_uid:
                found.append((uid, bytes(line)))
            uid = None
        else:
            match = _UID.search(line)
            uid = int(match.group(1)) if match else None
    return found


async def watch(
    target: Target, expected: dict[str, set[str]], deadline_s: float, refused: set[str] | None = None
) -> dict[str, Seen]:
    """Read each recipient's INBOX over IMAPS until every expected token arrived or time is up.

    refused is filled by the sender as it goes: a message that got no 250 is not waited for.
    """
    refused = refused if refused is not None else set()
    seen: dict[str, Seen] = {}
    accounts = {a.address: a for a in target.users}

    async def follow(address: str, tokens: set[str]) -> None:
        session = await open_imaps(target, accounts[address])
        last_uid, waiting = 0, set(tokens)
        give_up = time.monotonic() + deadline_s
        grace_until: float | None = None
        try:
            while time.monotonic() < give_up:
                waiting -= refused
                if not waiting:
                    grace_until = grace_until or time.monotonic() + DUPLICATE_GRACE_S
                    if time.monotonic() > grace_until:
                        break
                await session._call("NOOP", session._client.noop())
                for uid, raw in await _fetch_new(session, last_uid):
                    last_uid = max(last_uid, uid)
                    token = header(raw, ID_HEADER)
                    if token not in tokens:
                        continue
                    entry = seen.setdefault(token, Seen(first_seen_at=time.monotonic()))
                    entry.copies += 1
                    entry.body_sha256s.append(hashlib.sha256(split_message(raw)[1]).hexdigest())
                    waiting.discard(token)
                await asyncio.sleep(0.05)
        finally:
            await session.logout()

    await asyncio.gather(*(follow(address, tokens) for address, tokens in expected.items()))
    return seen
