"""`mailstack check` arguments: --port and --closed apply over a target file, and a filter
that matches nothing is a usage error, not an empty pass."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from harness.cli import _parser, check, target_from_args
from harness.errors import TargetError
from harness.policy import Tls
from stack.credentials import load_or_create_credentials
from stack.layout import BuildLayout
from stack.pki import ensure_pki
from stack.render import render_target
from stack.settings import load_settings


@pytest.fixture
def target_file(tmp_path: Path) -> Path:
    (tmp_path / "empty.toml").write_text("")
    settings = load_settings(tmp_path / "empty.toml")
    layout = BuildLayout(tmp_path / "build")
    ensure_pki(layout.pki.directory, settings.hostname)
    render_target(settings, layout, load_or_create_credentials(layout.credentials, settings.addresses, 5000))
    return layout.target


def parse(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(["check", *argv])


def test_port_and_closed_apply_over_the_target_file(target_file: Path) -> None:
    target = target_from_args(parse("--target", str(target_file), "--port", "smtp=2525", "--closed", "pop3"))
    assert target.port("smtp") == 2525
    assert target.services["pop3"].tls is Tls.CLOSED
    assert target.services["imap"].tls is Tls.STARTTLS  # the rest as the file says


@pytest.mark.parametrize("flags", [["--port", "smtp=0"], ["--port", "smtps=465"], ["--closed", "pop5"]])
def test_bad_port_or_service_is_a_usage_error(target_file: Path, flags: list[str]) -> None:
    with pytest.raises(TargetError):
        target_from_args(parse("--target", str(target_file), *flags))


async def test_only_matching_nothing_is_a_usage_error(target_file: Path) -> None:
    with pytest.raises(TargetError, match="no check id matches"):
        await check(parse("--target", str(target_file), "--only", "nonsense.*"), console=None)  # type: ignore[arg-type]
