"""What waits in Postfix's queue, and why, in words a lab operator can act on.

`python -m stack queue` (make queue) reads `postqueue -j` from the Postfix container,
groups deferred mail by reason and says what to look at. Parsing and hints are pure
(unit-tested); only `read_queue` and `recent_errors` talk to Docker.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass

from stack.errors import LabFailed

# (pattern on Postfix's delay_reason, what to do). The first match wins.
HINTS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"Name service error for name=\S+|connect to \S+: Connection refused|"
                   r"lost connection with \S+ while receiving the initial server greeting|"
                   r"delivery temporarily suspended", re.I),
        "Dovecot (LMTP) is down or restarting. Check `docker compose -p {project} ps` and "
        "`docker compose -p {project} logs dovecot`; "
        "the mail waits in the queue and is retried as soon as Dovecot is back (queue_retry).",
    ),
    (
        re.compile(r"said: 4\d\d [\d.]+ .*(Internal error|Temporary internal error)", re.I),
        "Dovecot could not store the message; its log gives the cause (a full disk shows as "
        "'No space left on device'). Free space or fix the cause: delivery resumes by itself.",
    ),
    (
        re.compile(r"said: 4\d\d [\d.]+ .*(Shutting down)", re.I),
        "Dovecot was stopping while delivering; the message is retried (no action needed).",
    ),
    (
        re.compile(r"quota|mailbox (is )?full|over quota", re.I),
        "A mailbox is over quota or its disk is full: free space or raise the quota.",
    ),
)
GENERIC_HINT = "Postfix retries with backoff; `docker compose -p {project} logs postfix` has the full history."
_NOISE = (
    (re.compile(r"\[\d{1,3}(\.\d{1,3}){3}\]"), ""),  # container addresses change on restart
    (re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\]"), ""),  # Dovecot's error timestamps
    (re.compile(r"<[^>\s]+@[^>\s]+>"), "<recipient>"),
    (re.compile(r"\s+"), " "),
)


@dataclass(frozen=True)
class Deferral:
    reason: str
    count: int
    hint: str


@dataclass(frozen=True)
class QueueSummary:
    by_queue: dict[str, int]  # incoming, active, deferred, hold, maildrop -> messages
    deferrals: list[Deferral]  # most frequent first

    @property
    def total(self) -> int:
        return sum(self.by_queue.values())

    @property
    def dovecot_involved(self) -> bool:
        return any("dovecot" in d.reason.lower() or "Dovecot" in d.hint for d in self.deferrals)


def parse_postqueue_json(text: str) -> list[dict[str, object]]:
    """`postqueue -j` prints one JSON object per queued message."""
    entries = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                entries.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise LabFailed(f"postqueue -j line {number} is not JSON: {line[:120]!r}") from exc
    return entries


def normalize_reason(reason: str) -> str:
    for pattern, replacement in _NOISE:
        reason = pattern.sub(replacement, reason)
    return reason.strip()


def hint_for(reason: str) -> str:
    return next((hint for pattern, hint in HINTS if pattern.search(reason)), GENERIC_HINT)


def summarize(entries: list[dict[str, object]]) -> QueueSummary:
    by_queue = Counter(str(entry.get("queue_name", "?")) for entry in entries)
    reasons: Counter[str] = Counter()
    for entry in entries:
        recipients = entry.get("recipients") or []
        for recipient in recipients if isinstance(recipients, list) else []:
            reason = str(recipient.get("delay_reason", "")) if isinstance(recipient, dict) else ""
            if reason:
                reasons[normalize_reason(reason)] += 1
    deferrals = [Deferral(reason, count, hint_for(reason)) for reason, count in reasons.most_common()]
    return QueueSummary(dict(by_queue), deferrals)


def problem_lines(log: str, limit: int = 5) -> list[str]:
    """The last few Error/Fatal/Panic lines of a Dovecot log."""
    bad = [line for line in log.splitlines() if re.search(r"\b(Error|Fatal|Panic):", line)]
    return bad[-limit:]
