"""Exactly-once accounting: every message sent under load gets one fate.

Pure code (no I/O), unit-tested in tests/test_load_accounting.py. A message is judged from
each mailbox view that was read (IMAPS while the load runs, POP3S at the end); when the views
disagree, the worse fate wins, so a copy that only one protocol shows is not "delivered".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum


class Fate(StrEnum):
    DELIVERED = "delivered once"
    UNCONFIRMED = "delivered without 250"  # the reply was lost (e.g. a crash after queueing): SMTP allows it
    REFUSED = "refused (no 250)"  # the client saw the failure, and the message is absent
    DUPLICATED = "duplicated"
    MISSING = "missing"
    CORRUPTED = "corrupted"


# Worst first: when two views disagree, the first of these that either shows is the fate.
SEVERITY = (Fate.CORRUPTED, Fate.DUPLICATED, Fate.MISSING, Fate.UNCONFIRMED, Fate.REFUSED, Fate.DELIVERED)
# Lost or damaged mail. A duplicate is judged apart: SMTP allows one when a session breaks
# after the final "." but before the reply is recorded (RFC 5321 s6.1), e.g. a crash in
# the middle of an LMTP delivery, so a fault test bounds it instead of forbidding it.
LOSSES = frozenset({Fate.MISSING, Fate.CORRUPTED})


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
    """What one mailbox view showed of one message."""

    copies: int = 0
    first_seen_at: float = 0.0
    body_sha256s: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Accounting:
    fates: dict[str, Fate]
    latencies_s: list[float]  # 250 -> visible over IMAP, for messages delivered once

    def count(self, fate: Fate) -> int:
        return sum(1 for f in self.fates.values() if f is fate)

    @property
    def losses(self) -> int:
        return sum(1 for f in self.fates.values() if f in LOSSES)

    @property
    def duplicates(self) -> int:
        return self.count(Fate.DUPLICATED)


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (0 for no values)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5 - 1e-9)))
    return ordered[rank - 1]


def judge(message: Sent, seen: Seen | None) -> Fate:
    """The fate of one message in one mailbox view."""
    if seen is None or seen.copies == 0:
        return Fate.REFUSED if message.accepted_at is None else Fate.MISSING
    if any(digest != message.body_sha256 for digest in seen.body_sha256s):
        return Fate.CORRUPTED
    if seen.copies > 1:
        return Fate.DUPLICATED
    return Fate.UNCONFIRMED if message.accepted_at is None else Fate.DELIVERED


def worst(fates: Sequence[Fate]) -> Fate:
    return next(f for f in SEVERITY if f in fates)


def account(
    sent: Sequence[Sent], *views: Mapping[str, Seen], first_seen: Mapping[str, float] | None = None
) -> Accounting:
    """Every sent message gets one fate over all views. Latency (250 -> first visible) counts
    only clean single deliveries, timed by first_seen (the live watcher) when given, else by
    the first view."""
    fates: dict[str, Fate] = {}
    latencies: list[float] = []
    for message in sent:
        fate = worst([judge(message, view.get(message.token)) for view in views] or [Fate.MISSING])
        fates[message.token] = fate
        if fate is not Fate.DELIVERED or message.accepted_at is None:
            continue
        if first_seen is not None:
            if message.token in first_seen:
                latencies.append(max(0.0, first_seen[message.token] - message.accepted_at))
        elif views:
            latencies.append(max(0.0, views[0][message.token].first_seen_at - message.accepted_at))
    return Accounting(fates, latencies)
