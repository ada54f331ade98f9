"""Helpers for the fault tests: load milestones, waiting for recovery, checking that
submission works again. Test support only; no test lives here."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from harness.accounting import Sent
from harness.lab import RunningLab
from harness.message import make_message
from harness.smtp import submit
from harness.target import Target

RECOVERY_S = 60.0


class Milestone:
    """Counts replies; a fault waits for the load to reach a given number of 250s."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.accepted = 0
        self.replies = 0
        self.accepted_times: list[float] = []
        self._changed = asyncio.Event()

    def on_sent(self, sent: Sent) -> None:
        self.replies += 1
        if sent.accepted_at is not None:
            self.accepted += 1
            self.accepted_times.append(sent.accepted_at)
        self._changed.set()

    def accepted_after(self, moment: float) -> int:
        return sum(1 for t in self.accepted_times if t > moment)

    async def all_replied(self) -> None:
        """Every message of the load has its reply (250 or a failure)."""
        while self.replies < self.total:
            self._changed.clear()
            await self._changed.wait()

    async def reached(self, accepted: int) -> None:
        while self.accepted < accepted:
            self._changed.clear()
            await self._changed.wait()


async def wait_healthy(lab: RunningLab, service: str, timeout_s: float = RECOVERY_S) -> None:
    give_up = time.monotonic() + timeout_s
    while (state := await asyncio.to_thread(lab.container_state, service)).health != "healthy":
        assert time.monotonic() < give_up, f"{service} not healthy after {timeout_s:.0f} s: {state}"
        await asyncio.sleep(0.5)


async def eventually(check: Callable[[], Awaitable[None]], within_s: float) -> None:
    """check() passes within within_s (tried every second); else its last failure stands."""
    give_up = time.monotonic() + within_s
    while True:
        try:
            await check()
            return
        except AssertionError:
            if time.monotonic() > give_up:
                raise
        await asyncio.sleep(1)


async def submissions_all_succeed(target: Target, count: int = 20) -> None:
    """count logins at once on 465 and 587, enough to reach every smtpd process."""
    sender, recipient = target.users[0], target.users[1]
    replies = await asyncio.gather(
        *(
            submit(target, ("submissions", "submission")[n % 2], sender,
                   make_message(sender.address, recipient.address, via=f"after-fault-{n}"))
            for n in range(count)
        ),
        return_exceptions=True,
    )
    failures = [r for r in replies if isinstance(r, BaseException)]
    assert not failures, f"{len(failures)} of {count} submissions failed after recovery: {failures[:3]}"
