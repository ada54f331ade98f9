"""`python -m stack queue`: postqueue -j grouped by reason, with a hint a person can act on."""

from __future__ import annotations

import json

import pytest

from stack.errors import LabFailed
from stack.queue import GENERIC_HINT, normalize_reason, parse_postqueue_json, problem_lines, summarize


def entry(queue: str, *reasons: str) -> str:
    recipients = [{"address": f"u{n}@example.test", "delay_reason": r} for n, r in enumerate(reasons)]
    return json.dumps({"queue_name": queue, "queue_id": "ABC", "recipients": recipients})


DOWN = "delivery temporarily suspended: Host or domain name not found. Name service error for name=dovecot type=A: Host not found"
FULL = ("host dovecot[172.30.0.2] said: 451 4.2.0 <bob@example.test> Internal error occurred. Refer to server log "
        "for more information. [2026-12-03 16:57:42] (in reply to end of DATA command)")


def test_deferrals_are_grouped_across_addresses_and_restarts() -> None:
    other_ip = FULL.replace("172.30.0.2", "172.30.0.9").replace("bob@", "alice@").replace("16:57:42", "17:01:00")
    text = "\n".join([entry("deferred", FULL), entry("deferred", other_ip), entry("deferred", DOWN), entry("active")])
    summary = summarize(parse_postqueue_json(text))
    assert summary.by_queue == {"deferred": 3, "active": 1} and summary.total == 4
    assert [d.count for d in summary.deferrals] == [2, 1]
    assert "No space left on device" in summary.deferrals[0].hint
    assert "down or restarting" in summary.deferrals[1].hint
    assert summary.dovecot_involved


@pytest.mark.parametrize(
    ("reason", "expected"),
    [
        ("connect to dovecot[172.18.0.2]:24: Connection refused", "down or restarting"),
        ("lost connection with dovecot[172.18.0.2] while receiving the initial server greeting", "down or restarting"),
        ("host dovecot[1.2.3.4] said: 421 4.3.2 mail.example.test Shutting down (in reply to RCPT TO command)", "stopping"),
        ("host x said: 452 4.2.2 Mailbox is full", "quota"),
        ("something never seen before", GENERIC_HINT),
    ],
)
def test_hints(reason: str, expected: str) -> None:
    (deferral,) = summarize(parse_postqueue_json(entry("deferred", reason))).deferrals
    assert expected in deferral.hint


def test_noise_is_removed_but_the_reason_kept() -> None:
    assert normalize_reason(FULL) == (
        "host dovecot said: 451 4.2.0 <recipient> Internal error occurred. Refer to server log for more "
        "information. (in reply to end of DATA command)"
    )


def test_empty_queue_and_bad_output() -> None:
    assert summarize(parse_postqueue_json("")).total == 0
    with pytest.raises(LabFailed, match="line 2 is not JSON"):
        parse_postqueue_json(entry("deferred") + "\npostqueue: fatal: oops")


def test_problem_lines_are_the_last_errors() -> None:
    log = "\n".join(["Info: fine", "lmtp(bob): Error: write() failed: No space left on device", "Info: ok",
                     "master: Fatal: x", "master: Panic: y", "imap: Error: z"])
    assert problem_lines(log, limit=3) == ["master: Fatal: x", "master: Panic: y", "imap: Error: z"]
