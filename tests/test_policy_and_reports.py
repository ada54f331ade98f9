"""The port policy, check planning, the runner's failure handling and the report views."""

from __future__ import annotations

import asyncio
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from harness.checks import ALL_CHECKS, Check, CheckResult, Status
from harness.checks.base import passed
from harness.errors import StepTimeout
from harness.policy import Role, Tls, service_policy
from harness.report import summary, to_json, to_junit
from harness.runner import plan, run_one
from harness.target import Account, Target, load_target


def make_target(tmp_path: Path, closed: tuple[str, ...] = ()) -> Target:
    ca = tmp_path / "ca.pem"
    ca.write_text("not used")
    standard = {"smtp": 25, "submissions": 465, "submission": 587, "imaps": 993, "pop3s": 995, "imap": 143, "pop3": 110}
    return Target(
        host="127.0.0.1",
        server_name="mail.example.test",
        mail_domain="example.test",
        ca_file=ca,
        services={n: service_policy(n, p + 10000, Tls.CLOSED if n in closed else None) for n, p in standard.items()},
        users=(Account("a@example.test", "p"), Account("b@example.test", "q")),
    )


def test_rfc8314_defaults() -> None:
    assert service_policy("submissions", 465).tls is Tls.IMPLICIT
    assert service_policy("submission", 587).tls is Tls.STARTTLS
    assert service_policy("smtp", 2525).role is Role.RELAY_IN
    assert service_policy("imap", 143, "closed").tls is Tls.CLOSED
    assert service_policy("pop3", 20110).label == "pop3.110"  # ids use the standard port


def test_plan_follows_the_policy(tmp_path: Path) -> None:
    ids = {c.id_for(s) for c, s in plan(make_target(tmp_path, closed=("imap",)))}
    assert "imap.143.closed" in ids and not any(i.startswith("imap.143.") and i != "imap.143.closed" for i in ids)
    assert {"smtp.25.no-auth", "smtp.25.smtp-smuggling", "smtp.465.tls-first", "smtp.587.auth-before-tls"} <= ids
    assert "smtp.25.auth-mechanisms" not in ids and "smtp.465.auth-before-tls" not in ids
    assert "pop3.110.starttls-injection" in ids and "pop3.995.starttls" not in ids


def test_plan_only_filters_by_glob(tmp_path: Path) -> None:
    ids = {c.id_for(s) for c, s in plan(make_target(tmp_path), only=["*.tls-versions"])}
    assert ids == {f"{p}.tls-versions" for p in ("smtp.25", "smtp.465", "smtp.587", "imap.993", "pop3.995", "imap.143", "pop3.110")}


def test_check_ids_are_unique_and_stable(tmp_path: Path) -> None:
    ids = [c.id_for(s) for c, s in plan(make_target(tmp_path))]
    assert len(ids) == len(set(ids)) == 68
    assert len({c.name for c in ALL_CHECKS}) == len(ALL_CHECKS)


def test_target_file_policy_overrides(tmp_path: Path) -> None:
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    path = tmp_path / "t.json"
    path.write_text(json.dumps({
        "host": "127.0.0.1", "server_name": "m.test", "mail_domain": "test.test", "ca_file": str(ca),
        "ports": {"smtp": 25, "submissions": 465, "submission": 587, "imaps": 993, "pop3s": 995, "imap": 143, "pop3": 110},
        "tls": {"imap": "closed"}, "closed": ["pop3"],
        "users": [{"address": "a@test.test", "password": "p"}, {"address": "b@test.test", "password": "q"}],
    }))
    target = load_target(path)
    assert target.closed == {"imap", "pop3"} and target.services["smtp"].tls is Tls.STARTTLS


async def _run(outcome_or_error: object, timeout: float = 1.0) -> CheckResult:
    async def body(target: Target, service: object) -> object:
        if isinstance(outcome_or_error, BaseException):
            raise outcome_or_error
        if outcome_or_error == "hang":
            await asyncio.sleep(10)
        return outcome_or_error

    check = Check("demo", "demo", lambda s: True, body)  # type: ignore[arg-type]
    return await run_one(None, check, service_policy("smtp", 25), timeout=timeout)  # type: ignore[arg-type]


async def test_runner_turns_server_faults_into_failures_and_bugs_into_errors() -> None:
    assert (await _run(passed("fine"))).status is Status.PASS
    assert (await _run(ConnectionRefusedError("refused"))).status is Status.FAIL
    timeout = await _run(StepTimeout("SMTP greeting", 25, 3))
    assert timeout.status is Status.FAIL and "SMTP greeting on port 25" in timeout.reason
    assert (await _run("hang", timeout=0.05)).reason == "no result within 0.05 s"
    bug = await _run(KeyError("oops"))
    assert bug.status is Status.ERROR and "KeyError" in bug.dialogue


def results() -> list[CheckResult]:
    return [
        CheckResult("smtp.25.no-auth", "no-auth", "smtp", 25, Status.PASS, "fine"),
        CheckResult("smtp.587.auth-before-tls", "auth-before-tls", "submission", 587, Status.FAIL,
                    "offered before TLS: PLAIN", "S: 250-AUTH PLAIN\nC: AUTH ***"),
        CheckResult("imap.143.closed", "closed", "imap", 143, Status.SKIP, "not applicable"),
    ]


def test_json_report(tmp_path: Path) -> None:
    data = json.loads(to_json(make_target(tmp_path), results(), 1.5))
    assert data["summary"] == {"pass": 1, "fail": 1, "skip": 1, "error": 0}
    failure = data["results"][1]
    assert failure["status"] == "fail" and failure["dialogue"].endswith("C: AUTH ***")
    assert data["target"]["services"]["submissions"] == {"port": 10465, "tls": "implicit", "role": "submission"}


def test_junit_report_is_valid_xml_with_failures_and_skips() -> None:
    suite = ET.fromstring(to_junit(results(), 1.5))
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("3", "1", "1")
    failure = suite.find("testcase[@name='smtp.587.auth-before-tls']/failure")
    assert failure is not None and failure.get("message") == "offered before TLS: PLAIN"
    assert "AUTH ***" in (failure.text or "")
    assert suite.find("testcase[@name='imap.143.closed']/skipped") is not None


def test_summary_counts_every_status() -> None:
    assert summary([]) == {"pass": 0, "fail": 0, "skip": 0, "error": 0}


@pytest.mark.parametrize("argv, message", [
    (["check"], "give --target FILE"),
    (["check", "--server-name", "m.test", "--ca", "ca.pem", "--user", "a@x.test:p", "--user", "nocolon"], "ADDRESS:PASSWORD"),
    (["check", "--target", "/nonexistent.json"], "does not exist"),
])
def test_cli_usage_errors_exit_2(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    from harness.cli import main

    assert main(argv) == 2
    assert message in capsys.readouterr().out
