"""Fixtures: the target under test, either a lab started here or a running one.

`pytest harness` builds the images (cached) and starts the lab with testcontainers on free
host ports. `pytest harness --target build/target.json` (or MAILSTACK_TARGET=...) checks
an already-running lab instead. If no Docker engine answers, the tests fail; they never skip.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.lab import REPO_ROOT, LabUnavailable, build, running_lab
from harness.readiness import wait_until_ready
from harness.target import Target, load_target


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--target",
        default=os.environ.get("MAILSTACK_TARGET"),
        help="target file of a running mail host (default: start the lab with testcontainers)",
    )


def _ready(target: Target) -> Target:
    asyncio.run(wait_until_ready(target))
    return target


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    given = request.config.getoption("--target")
    if given:
        yield _ready(load_target(Path(given)))
        return
    build_dir = REPO_ROOT / "build"
    try:
        build(build_dir)
        with running_lab(build_dir, f"mailstack-test-{os.getpid()}", tmp_path_factory.mktemp("lab")) as lab:
            yield _ready(lab)
    except LabUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def plaintext_off_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """Dovecot built with 143 and 110 switched off, to prove that "off" means closed."""
    build_dir = REPO_ROOT / "build" / "variants" / "plaintext-off"
    env = {
        "MAILSTACK_IMAP_PLAINTEXT": "false",
        "MAILSTACK_POP3_PLAINTEXT": "false",
        "MAILSTACK_IMAGE_PREFIX": "mailstack-plaintext-off",
    }
    try:
        build(build_dir, env)
        with running_lab(
            build_dir, f"mailstack-off-{os.getpid()}", tmp_path_factory.mktemp("off"), services=["dovecot"]
        ) as lab:
            yield lab
    except LabUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
