"""Every conformance check of `mailstack check`, as a pytest test against the lab."""

from __future__ import annotations

import asyncio

import pytest

from harness.checks import ALL_CHECKS, CheckResult, Status
from harness.policy import RFC8314, service_policy
from harness.runner import run_checks
from harness.target import Target

pytestmark = pytest.mark.e2e

# The lab's policy is RFC 8314 with STARTTLS-only 143/110: the ids are known before it starts.
LAB_IDS = [
    check.id_for(service)
    for service in (service_policy(name, spec[1]) for name, spec in RFC8314.items())
    for check in ALL_CHECKS
    if check.applies(service)
]


@pytest.fixture(scope="session")
def conformance(target: Target) -> dict[str, CheckResult]:
    return {r.id: r for r in asyncio.run(run_checks(target))}


@pytest.mark.parametrize("check_id", LAB_IDS)
def test_lab_passes(conformance: dict[str, CheckResult], check_id: str) -> None:
    result = conformance.get(check_id)
    assert result is not None, f"{check_id} did not run: the target's policy differs from the lab's"
    assert result.status is Status.PASS, f"{result.status.value}: {result.reason}\n{result.dialogue}"
