"""What a check is and what it yields: a value (status, reason, dialogue), never an exception.

A misbehaving server is a failed result carrying the dialogue that shows it; exceptions are
kept for harness bugs and misuse. One failure never hides another.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum

from harness.policy import ServicePolicy
from harness.target import Target


class Status(StrEnum):
    PASS = "pass"
    FAIL = "fail"
    SKIP = "skip"
    ERROR = "error"  # the harness itself broke


@dataclass(frozen=True)
class Outcome:
    status: Status
    reason: str
    dialogue: str = ""


def passed(reason: str, dialogue: str = "") -> Outcome:
    return Outcome(Status.PASS, reason, dialogue)


def failed(reason: str, dialogue: str = "") -> Outcome:
    return Outcome(Status.FAIL, reason, dialogue)


def skipped(reason: str) -> Outcome:
    return Outcome(Status.SKIP, reason)


def verdict(ok: bool, good: str, bad: str, dialogue: str = "") -> Outcome:
    return passed(good, dialogue) if ok else failed(bad, dialogue)


CheckFunction = Callable[[Target, ServicePolicy], Awaitable[Outcome]]


@dataclass(frozen=True)
class Check:
    """A named check and the services it applies to."""

    name: str
    summary: str
    applies: Callable[[ServicePolicy], bool]
    run: CheckFunction
    # Checks in a later phase start when earlier ones are done: failed logins make servers
    # slow down later logins from the same address (Dovecot's auth penalty), so they go last.
    phase: int = 0

    def id_for(self, service: ServicePolicy) -> str:
        return f"{service.label}.{self.name}"


@dataclass(frozen=True)
class CheckResult:
    id: str
    check: str
    service: str
    port: int
    status: Status
    reason: str
    dialogue: str = ""
    seconds: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)
