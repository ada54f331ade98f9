"""Fixtures: the target under test, either a lab started here or a running one.

`pytest harness` builds the images (cached) into build/harness/ and starts the lab with
testcontainers on free host ports, so the user's own build/ and running lab are left alone.
`pytest harness --target build/target.json` (or MAILSTACK_TARGET=...) checks an
already-running lab instead. If no Docker engine answers, the tests fail; they never skip.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from harness.errors import HarnessError
from harness.lab import REPO_ROOT, LabUnavailable, RunningLab, build, running_lab, user_image_prefix
from harness.readiness import wait_until_ready
from harness.target import Target, load_target

HARNESS_BUILD = REPO_ROOT / "build" / "harness"
GIVEN_TARGET_READY_S = 15.0
_projects = itertools.count()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--target",
        default=os.environ.get("MAILSTACK_TARGET"),
        help="target file of a running mail host (default: start the lab with testcontainers)",
    )


def _harness_settings(name: str) -> dict[str, str]:
    """Image names of the harness's labs: the user's prefix plus the lab's name, never the
    user's own tags (a `docker compose up` of the user's lab would start the harness's image,
    with another CA and other passwords)."""
    return {"MAILSTACK_IMAGE_PREFIX": f"{user_image_prefix()}-{name}"}


@contextmanager
def own_lab(
    tmp_path_factory: pytest.TempPathFactory, name: str, env: dict[str, str] | None = None, **options: object
) -> Iterator[RunningLab]:
    """A lab of this checkout's images, built in build/harness/<name>, on free ports, removed after."""
    build_dir = HARNESS_BUILD / name
    project = f"mailstack-{name}-{os.getpid()}-{next(_projects)}"
    settings = _harness_settings(name)
    try:
        build(build_dir, {**settings, **(env or {})})
        with running_lab(build_dir, project, tmp_path_factory.mktemp(name), **options) as lab:  # type: ignore[arg-type]
            yield lab
    except LabUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    finally:
        if name != "test":  # a variant's images (they hold a server key); "test" stays, for the next run
            prefix = settings["MAILSTACK_IMAGE_PREFIX"]
            subprocess.run(["docker", "image", "rm", f"{prefix}/postfix:latest", f"{prefix}/dovecot:latest"],
                           capture_output=True)


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    given = request.config.getoption("--target")
    if given:
        try:
            lab_target = load_target(Path(given))
            asyncio.run(wait_until_ready(lab_target, GIVEN_TARGET_READY_S))
        except HarnessError as exc:
            pytest.fail(f"target {given} is not ready: {exc}\n(for the lab: `make up` first)", pytrace=False)
        yield lab_target
        return
    with own_lab(tmp_path_factory, "test") as lab:
        asyncio.run(wait_until_ready(lab.target))
        yield lab.target


@pytest.fixture(scope="session")
def harness_build_dir() -> Path:
    """The rendered files and images of the harness's lab (variants start from them)."""
    build_dir = HARNESS_BUILD / "test"
    try:
        build(build_dir, _harness_settings("test"))
    except LabUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)
    return build_dir


@pytest.fixture
def fresh_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningLab]:
    """A lab of its own for a test that stops and starts containers."""
    with own_lab(tmp_path_factory, "test") as lab:
        asyncio.run(wait_until_ready(lab.target))
        yield lab


@pytest.fixture(scope="session")
def plaintext_off_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    """Dovecot built with 143 and 110 switched off, to prove that "off" means closed."""
    env = {"MAILSTACK_IMAP_PLAINTEXT": "false", "MAILSTACK_POP3_PLAINTEXT": "false"}
    with own_lab(tmp_path_factory, "plaintext-off", env, services=["dovecot"]) as lab:
        yield lab.target
