"""Reading test messages back: a live IMAPS watcher (when did each message become visible?)
and the final census over IMAPS and POP3S (how many intact copies of each are there?).

The two jobs are kept apart on purpose. The watcher only records first sight, for latency
and progress; it reconnects when Dovecot goes away, and starts over when the mailbox's
UIDVALIDITY changes (Dovecot may renumber a mailbox whose index it rebuilt). The census, run once
the load is over, scans whole mailboxes, so its counts do not depend on what the watcher
managed to see.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import aioimaplib

from harness.accounting import Seen
from harness.errors import HarnessError
from harness.imap import ImapSession, open_imaps
from harness.mailbox import open_pop3s
from harness.message import ID_HEADER, TestMessage, header, split_message
from harness.pop3 import POP3Error
from harness.target import Account, Target

POLL_INTERVAL_S = 0.05
RECONNECT_PAUSE_S = 0.5
SESSION_TIMEOUT_S = 30.0
IMAP_ERRORS = (HarnessError, OSError, asyncio.TimeoutError, aioimaplib.Abort, aioimaplib.CommandTimeout)
_UID = re.compile(rb"UID (\d+)")
# UIDs per FETCH. aioimaplib handles the lines of one network read recursively, one call
# level per line, so a response of ~1000 short lines (UID FETCH 1:* (UID) on a big
# mailbox) exceeds Python's recursion limit. Small fetches, and SEARCH (one line) for UIDs.
FETCH_CHUNK = 100
_STATUS = {name: re.compile(rb"%s (\d+)" % name.encode()) for name in ("UIDNEXT", "UIDVALIDITY", "MESSAGES")}


@dataclass(frozen=True)
class MailboxStart:
    """Where a mailbox stood before a load: the census looks only at what came after."""

    uidvalidity: int
    next_uid: int
    messages: int


async def mailbox_status(session: ImapSession) -> dict[str, int]:
    response = await session._call("STATUS", session._client.status("INBOX", "(UIDNEXT UIDVALIDITY MESSAGES)"))
    lines = [line for line in response.lines if isinstance(line, bytes)]
    return {name: int(m.group(1)) for name, rx in _STATUS.items() for line in lines for m in [rx.search(line)] if m}


def _literals_by_uid(lines: list[bytes | bytearray]) -> list[tuple[int, bytes]]:
    """(uid, literal) pairs of a UID FETCH response (aioimaplib: literals are bytearray)."""
    found: list[tuple[int, bytes]] = []
    uid = None
    for line in lines:
        if isinstance(line, bytearray):
            if uid is not None:
                found.append((uid, bytes(line)))
            uid = None
        else:
            match = _UID.search(line)
            uid = int(match.group(1)) if match else None
    return found


async def uids_above(session: ImapSession, last_uid: int) -> list[int]:
    found = await session._call("UID SEARCH", session._client.uid_search(f"UID {last_uid + 1}:*"))
    lines = [line for line in found.lines if isinstance(line, bytes) and line[:1].isdigit()]
    uids = {int(uid) for line in lines for uid in line.split()}
    # "n:*" always matches the newest message, even when its UID is below n.
    return sorted(uid for uid in uids if uid > last_uid)


async def fetch(session: ImapSession, uids: list[int], item: str) -> list[tuple[int, bytes]]:
    found: list[tuple[int, bytes]] = []
    for first in range(0, len(uids), FETCH_CHUNK):
        chunk = ",".join(map(str, uids[first:first + FETCH_CHUNK]))
        response = await session._call("UID FETCH", session._client.uid("fetch", chunk, f"(UID {item})"))
        found += _literals_by_uid(response.lines)
    return found


class MailboxWatcher:
    """One IMAPS session per recipient, opened before sending starts (so only mail arriving
    from then on is fetched); notes when each expected token is first visible."""

    def __init__(self, target: Target, account: Account, tokens: set[str]) -> None:
        self.target, self.account, self.tokens = target, account, tokens
        self.first_seen: dict[str, float] = {}
        self.session: ImapSession | None = None
        self.last_uid = 0
        self.uidvalidity = 0
        self.start = MailboxStart(0, 1, 0)

    @classmethod
    async def open(cls, target: Target, account: Account, tokens: set[str]) -> MailboxWatcher:
        watcher = cls(target, account, tokens)
        watcher.session = await open_imaps(target, account)
        status = await mailbox_status(watcher.session)
        watcher.start = MailboxStart(status.get("UIDVALIDITY", 0), status.get("UIDNEXT", 1), status.get("MESSAGES", 0))
        watcher.last_uid, watcher.uidvalidity = watcher.start.next_uid - 1, watcher.start.uidvalidity
        return watcher

    async def follow(self, give_up_at: Callable[[], float], refused: set[str], on_seen: Callable[[str], None]) -> None:
        try:
            while time.monotonic() < give_up_at() and self.tokens - refused - self.first_seen.keys():
                try:
                    for raw in await self._poll():
                        token = _id_of(raw)
                        if token in self.tokens and token not in self.first_seen:
                            self.first_seen[token] = time.monotonic()
                            on_seen(token)
                except IMAP_ERRORS:
                    await self._reconnect()
                    continue
                await asyncio.sleep(POLL_INTERVAL_S)
        finally:
            if self.session is not None:
                await self.session.logout()

    async def _poll(self) -> list[bytes]:
        if self.session is None:
            self.session = await open_imaps(self.target, self.account)
            uidvalidity = (await mailbox_status(self.session)).get("UIDVALIDITY", 0)
            if uidvalidity != self.uidvalidity:  # renumbered: every UID is new again
                self.last_uid, self.uidvalidity = 0, uidvalidity
        await self.session._call("NOOP", self.session._client.noop())
        new = await uids_above(self.session, self.last_uid)
        found = await fetch(self.session, new, f"BODY.PEEK[HEADER.FIELDS ({ID_HEADER})]")
        if new:
            self.last_uid = new[-1]
        return [raw for _, raw in found]

    async def _reconnect(self) -> None:
        if self.session is not None:
            await self.session.logout()
        self.session = None
        await asyncio.sleep(RECONNECT_PAUSE_S)


def _id_of(header_block: bytes) -> str | None:
    """The id header of a fetched header block (HEADER.FIELDS may omit the final CRLF)."""
    return header(header_block if b"\r\n\r\n" in header_block else header_block + b"\r\n", ID_HEADER)


def _record(seen: dict[str, Seen], token: str, raw: bytes) -> None:
    entry = seen.setdefault(token, Seen(first_seen_at=time.monotonic()))
    entry.copies += 1
    entry.body_sha256s.append(hashlib.sha256(split_message(raw)[1]).hexdigest())


async def imap_census(
    target: Target, expected: dict[str, set[str]], deadline_s: float = 0.0, starts: dict[str, MailboxStart] | None = None
) -> dict[str, Seen]:
    """Every copy of every expected token in each INBOX (ids by header, then whole messages
    for ours only); with starts, only mail that arrived since (the whole INBOX again if its
    UIDVALIDITY changed). With deadline_s, scans again until all are there or time is up."""
    accounts = {a.address: a for a in target.users}
    give_up = time.monotonic() + deadline_s
    result: dict[str, Seen] = {}

    async def one(address: str, tokens: set[str]) -> None:
        while True:
            seen: dict[str, Seen] = {}
            try:
                session = await open_imaps(target, accounts[address], SESSION_TIMEOUT_S)
                try:
                    start = (starts or {}).get(address)
                    from_uid = 1
                    if start and (await mailbox_status(session)).get("UIDVALIDITY") == start.uidvalidity:
                        from_uid = start.next_uid
                    uids = await uids_above(session, from_uid - 1)
                    ids = await fetch(session, uids, f"BODY.PEEK[HEADER.FIELDS ({ID_HEADER})]")
                    ours = [uid for uid, raw in ids if _id_of(raw) in tokens]
                    for _, raw in await fetch(session, ours, "BODY.PEEK[]"):
                        _record(seen, header(raw, ID_HEADER) or "", raw)
                finally:
                    await session.logout()
            except IMAP_ERRORS:
                if time.monotonic() > give_up:
                    raise
            if tokens <= seen.keys() or time.monotonic() > give_up:
                result.update(seen)
                return
            await asyncio.sleep(0.5)

    await asyncio.gather(*(one(address, tokens) for address, tokens in expected.items()))
    return result


async def pop3_census(
    target: Target, expected: dict[str, set[str]], starts: dict[str, MailboxStart] | None = None
) -> dict[str, Seen]:
    """Every copy of every expected token over POP3S (headers by TOP, whole message by RETR
    only for ours); with starts, only messages after those there before. Nothing is deleted."""
    seen: dict[str, Seen] = {}
    accounts = {a.address: a for a in target.users}

    async def one(address: str, tokens: set[str]) -> None:
        client = await open_pop3s(target, accounts[address], timeout=SESSION_TIMEOUT_S)
        try:
            count, _size = await client.stat()
            start = (starts or {}).get(address)
            before = start.messages if start and start.messages <= count else 0
            for number in range(before + 1, count + 1):
                try:
                    token = header(await client.top(number, 0), ID_HEADER)
                    if token not in tokens:
                        continue
                    raw = await client.retr(number)
                except POP3Error:
                    continue  # expunged by another session since STAT
                _record(seen, token, raw)
            await client.quit()
        finally:
            await client.close()

    await asyncio.gather(*(one(address, tokens) for address, tokens in expected.items()))
    return seen


def expected_by_recipient(messages: Sequence[TestMessage]) -> dict[str, set[str]]:
    """Recipient address -> tokens of the messages sent to it."""
    expected: dict[str, set[str]] = {}
    for message in messages:
        expected.setdefault(message.recipient, set()).add(message.token)
    return expected


@dataclass(frozen=True)
class Census:
    imap: dict[str, Seen]
    pop3: dict[str, Seen]


async def census(
    target: Target, expected: dict[str, set[str]], deadline_s: float = 0.0, starts: dict[str, MailboxStart] | None = None
) -> Census:
    """Both views, over whole mailboxes or what arrived since starts; IMAPS waits up to
    deadline_s for late mail."""
    imap = await imap_census(target, expected, deadline_s, starts)
    return Census(imap, await pop3_census(target, expected, starts))
