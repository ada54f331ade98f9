"""Run every applicable check against a target, concurrently, each bounded in time."""

from __future__ import annotations

import asyncio
import fnmatch
import ssl
import time
import traceback
from collections.abc import Callable, Sequence

import aiosmtplib

from harness.checks import ALL_CHECKS, Check, CheckResult, Status
from harness.errors import HarnessError, StepTimeout
from harness.policy import ServicePolicy
from harness.target import Target

CHECK_TIMEOUT_S = 60.0
DEFAULT_CONCURRENCY = 8
# A misbehaving server shows up as one of these: a failed check, not a crash of the run.
SERVER_FAULTS = (HarnessError, OSError, ssl.SSLError, aiosmtplib.SMTPException, asyncio.TimeoutError, EOFError)


def plan(target: Target, only: Sequence[str] = (), checks: Sequence[Check] = ALL_CHECKS) -> list[tuple[Check, ServicePolicy]]:
    """(check, service) pairs the policy calls for, optionally filtered by id globs."""
    pairs = [(c, s) for s in target.services.values() for c in checks if c.applies(s)]
    if only:
        pairs = [(c, s) for c, s in pairs if any(fnmatch.fnmatch(c.id_for(s), pattern) for pattern in only)]
    return pairs


async def run_one(target: Target, check: Check, service: ServicePolicy, timeout: float = CHECK_TIMEOUT_S) -> CheckResult:
    started = time.monotonic()
    try:
        outcome = await asyncio.wait_for(check.run(target, service), timeout)
        status, reason, dialogue = outcome.status, outcome.reason, outcome.dialogue
    except StepTimeout as exc:  # a TimeoutError too, but one that names its step and port
        status, reason, dialogue = Status.FAIL, str(exc), ""
    except asyncio.TimeoutError:
        status, reason, dialogue = Status.FAIL, f"no result within {timeout:g} s", ""
    except SERVER_FAULTS as exc:
        status, reason, dialogue = Status.FAIL, f"{type(exc).__name__}: {exc}", ""
    except Exception as exc:  # noqa: BLE001 - a harness bug must not hide the other results
        status, reason, dialogue = Status.ERROR, f"harness error {type(exc).__name__}: {exc}", traceback.format_exc()
    return CheckResult(
        id=check.id_for(service),
        check=check.name,
        service=service.name,
        port=service.port,
        status=status,
        reason=reason,
        dialogue=dialogue,
        seconds=time.monotonic() - started,
    )


async def run_checks(
    target: Target,
    only: Sequence[str] = (),
    concurrency: int = DEFAULT_CONCURRENCY,
    on_result: Callable[[CheckResult], None] = lambda _r: None,
) -> list[CheckResult]:
    """All results, in plan order, whatever order they finished in."""
    gate = asyncio.Semaphore(concurrency)

    async def bounded(check: Check, service: ServicePolicy) -> CheckResult:
        async with gate:
            result = await run_one(target, check, service)
        on_result(result)
        return result

    pairs = plan(target, only)
    done: dict[tuple[str, str], CheckResult] = {}
    for phase in sorted({c.phase for c, _ in pairs}):
        batch = [(c, s) for c, s in pairs if c.phase == phase]
        for result in await asyncio.gather(*(bounded(c, s) for c, s in batch)):
            done[(result.check, result.service)] = result
    return [done[(c.name, s.name)] for c, s in pairs]


async def reachable(target: Target, timeout: float = 3.0) -> list[str]:
    """Services whose port accepts a TCP connection (closed-by-policy ones are not tried)."""

    async def try_connect(service: ServicePolicy) -> str | None:
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(target.host, service.port), timeout)
        except (OSError, asyncio.TimeoutError):
            return None
        writer.close()
        return service.name

    open_services = [s for s in target.services.values() if s.speaks_tls]
    return [name for name in await asyncio.gather(*(try_connect(s) for s in open_services)) if name]
