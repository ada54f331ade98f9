"""Nothing lost under faults: each test runs a load with exactly-once accounting on a lab
of its own and breaks something in the middle of it.

A message that got 250 after DATA must arrive exactly once; a message whose client saw a
failure may be absent (or arrive without its 250, which the report counts). Each fault
ends by itself, so every test is bounded: sending, then at most DELIVERY_DEADLINE_S.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable

import pytest

from harness.accounting import Fate
from harness.faultkit import Milestone, eventually, submissions_all_succeed, wait_healthy
from harness.flood import FloodStats, flood
from harness.lab import RunningLab
from harness.load import LoadResult, Progress, plan_messages, run
from harness.readiness import wait_until_ready

pytestmark = [pytest.mark.e2e, pytest.mark.own_lab]

MESSAGES = 240
CONCURRENCY = 10
RATE = 20.0  # messages/s: the load lasts ~12 s, so it spans the fault and the recovery
ALL_SERVICES = ["submissions", "submission", "smtp"]
DELIVERY_DEADLINE_S = 90.0  # covers Postfix's retry (queue_retry: 10 s, doubling)
# Postfix's default_destination_concurrency_limit: at most this many LMTP deliveries are in
# flight when Postfix dies, so at most this many can be delivered again after its restart.
LMTP_IN_FLIGHT = 20


async def load_with_fault(
    lab: RunningLab, fault: Callable[[Milestone], Awaitable[None]], milestone: Milestone | None = None
) -> LoadResult:
    """A paced load over 465, 587 and 25 with fault() alongside; nothing accepted may be
    missing or corrupted (duplicates are left to each test)."""
    milestone = milestone or Milestone(MESSAGES)
    planned = plan_messages(lab.target, MESSAGES, ALL_SERVICES)
    result = await run(
        lab.target, planned, CONCURRENCY, DELIVERY_DEADLINE_S, Progress(on_sent=milestone.on_sent),
        during=lambda: fault(milestone), rate=RATE,
    )
    assert result.accounting.losses == 0, _summary(result) + "\n" + _diagnostics(lab)
    return result


def _diagnostics(lab: RunningLab) -> str:
    """What a failure report needs: the queue and why (make queue), and Dovecot's errors."""
    try:
        return lab.stack("queue")
    except Exception as exc:  # a report helper must not hide the failure it reports
        return f"(make queue failed: {exc})"


def _summary(result: LoadResult) -> str:
    fates = {fate.value: result.accounting.count(fate) for fate in Fate}
    return f"fates {fates}; client errors {list(result.errors().items())[:5]}"


AUTH_RECOVERY_S = 6.0  # after Dovecot is healthy: Postfix's health check runs every 2 s


@pytest.mark.parametrize("how", ["stopped", "crashed"])
async def test_dovecot_down_mid_load_loses_nothing_and_auth_recovers(fresh_lab: RunningLab, how: str) -> None:
    """stopped: `docker compose stop`, then start. crashed: SIGKILL, then the restart policy."""
    postfix_before = fresh_lab.container_state("postfix")
    dovecot_before = fresh_lab.container_state("dovecot")
    during_outage: dict[str, int] = {}

    async def outage(milestone: Milestone) -> None:
        await milestone.reached(MESSAGES // 5)
        before = milestone.accepted
        if how == "stopped":
            await asyncio.to_thread(fresh_lab.stop, "dovecot")
            await asyncio.sleep(4)
            during_outage["accepted"] = milestone.accepted - before
            await asyncio.to_thread(fresh_lab.start, "dovecot")
        else:
            await asyncio.to_thread(fresh_lab.crash, "dovecot")
            await asyncio.sleep(0.5)
            await wait_healthy(fresh_lab, "dovecot")
            during_outage["accepted"] = milestone.accepted - before

    result = await load_with_fault(fresh_lab, outage)


    if how == "stopped":
        # Dovecot drains LMTP on stop (dovecot-run), so no delivery is cut after saving.
        assert result.accounting.duplicates == 0, _summary(result)
    else:
        # Killed mid-delivery, a saved message may lose its 250 and come again (at-least-once).
        assert result.accounting.duplicates <= LMTP_IN_FLIGHT, _summary(result)
        restarted = fresh_lab.container_state("dovecot")
        assert restarted.restart_count == dovecot_before.restart_count + 1, "the restart policy did not act"
    # Port 25 needs no Dovecot: Postfix kept accepting and queued for LMTP.
    assert during_outage["accepted"] > 0, _summary(result)
    # Submission clients got a quick 454 while Dovecot was away, not a session that hangs.
    assert not [error for error in result.errors() if "Timed out" in error], _summary(result)
    # AUTH works again on both submission ports within a health-check interval or two
    # (test_durability covers the stale SASL connections), and Postfix was never restarted.
    await wait_healthy(fresh_lab, "dovecot")
    await eventually(lambda: submissions_all_succeed(fresh_lab.target), AUTH_RECOVERY_S)
    postfix_after = fresh_lab.container_state("postfix")
    assert (postfix_after.started_at, postfix_after.restart_count) == (
        postfix_before.started_at, postfix_before.restart_count,
    )


async def test_postfix_killed_mid_load_keeps_every_250(fresh_lab: RunningLab) -> None:
    crashed: dict[str, float] = {}
    milestone = Milestone(MESSAGES)

    async def crash(milestone: Milestone) -> None:
        await milestone.reached(MESSAGES // 4)
        before = await asyncio.to_thread(fresh_lab.crash, "postfix")
        crashed["restarts_before"] = before.restart_count
        await wait_healthy(fresh_lab, "postfix")
        crashed["healthy_at"] = time.monotonic()

    result = await load_with_fault(fresh_lab, crash, milestone)

    after = fresh_lab.container_state("postfix")
    assert after.restart_count == crashed["restarts_before"] + 1, "the restart policy did not bring Postfix back"
    # Every 250 was delivered (no loss, checked above); clients saw the sessions that failed.
    failed = result.accounting.count(Fate.REFUSED) + result.accounting.count(Fate.UNCONFIRMED)
    assert failed > 0, "the crash should have failed some sessions in flight: " + _summary(result)
    # Mail delivered to Dovecot but not yet marked done in the queue is delivered again after
    # the restart: SMTP's at-least-once. Bounded by what LMTP had in flight.
    duplicated = [m for m in result.sent if result.accounting.fates[m.token] is Fate.DUPLICATED]
    assert len(duplicated) <= LMTP_IN_FLIGHT, _summary(result)
    # The load went on after the restart, and was accepted again.
    assert milestone.accepted_after(crashed["healthy_at"]) > 0, _summary(result)
    await submissions_all_succeed(fresh_lab.target)


# Signs of a crashed server process in the logs (a refused client is not one).
CRASH_MARKERS = {
    "postfix": re.compile(r"postfix/master\[\d+\]: warning: process .* (killed by signal|exit status)|panic:"),
    "dovecot": re.compile(r"\b(Panic|Fatal):|killed with signal|core dumped"),
}


async def test_bad_input_flood_does_not_stop_good_mail(fresh_lab: RunningLab) -> None:
    before = {service: fresh_lab.container_state(service) for service in CRASH_MARKERS}
    stats: dict[str, FloodStats] = {}

    async def bad_input(milestone: Milestone) -> None:
        stop = asyncio.Event()
        attack = asyncio.create_task(flood(fresh_lab.target, stop))
        await milestone.all_replied()
        stop.set()
        stats["flood"] = await attack

    result = await load_with_fault(fresh_lab, bad_input)

    # Every good message got its 250 and arrived once, through the whole flood.
    assert result.accounting.count(Fate.DELIVERED) == MESSAGES, _summary(result)
    tried = stats["flood"].attempts
    assert all(tried[kind] > 0 for kind in tried) and len(tried) >= 3 * 5, tried
    # No server process crashed: no restarts, still healthy, no crash in the logs.
    for service, earlier in before.items():
        now = fresh_lab.container_state(service)
        assert (now.restart_count, now.started_at, now.health) == (earlier.restart_count, earlier.started_at, "healthy")
        crashes = [line for line in fresh_lab.logs(service).splitlines() if CRASH_MARKERS[service].search(line)]
        assert not crashes, f"{service}: {crashes[:5]}"
    await wait_until_ready(fresh_lab.target)
