"""Each check is seen failing: on a lab weakened in one way, exactly the matching checks fail."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from harness.checks import Status
from harness.lab import LabUnavailable, running_lab
from harness.runner import run_checks
from harness.variants import VARIANTS, Variant, write_override

pytestmark = [pytest.mark.e2e, pytest.mark.own_lab]


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.name)
def test_harness_flags_exactly_the_broken_check(
    harness_build_dir: Path, variant: Variant, tmp_path_factory: pytest.TempPathFactory
) -> None:
    build_dir = harness_build_dir
    scratch = tmp_path_factory.mktemp(variant.name)
    override = write_override(variant, build_dir, scratch)
    try:
        with running_lab(build_dir, f"mailstack-{variant.name}-{os.getpid()}", scratch, overrides=[override]) as lab:
            results = asyncio.run(run_checks(variant.policy(lab.target)))
    except LabUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    failing = {r.id for r in results if r.status is not Status.PASS}
    details = "\n".join(f"{r.id}: {r.status.value}: {r.reason}" for r in results if r.id in failing ^ variant.must_fail)
    assert failing == variant.must_fail, f"{variant.breaks}: expected {sorted(variant.must_fail)}\n{details}"
