"""Exactly-once accounting: every message gets exactly one fate."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.accounting import Fate, Seen, Sent, account, percentile, worst
from harness.load import plan_messages
from harness.target import Target
from tests.test_policy_and_reports import make_target


def sent(token: str, accepted: float | None = 1.0, digest: str = "h") -> Sent:
    return Sent(token, "b@example.test", "submissions", digest, accepted)


def test_each_fate() -> None:
    messages = [sent("once"), sent("twice"), sent("lost"), sent("changed"), sent("refused", accepted=None)]
    seen = {
        "once": Seen(1, 1.25, ["h"]),
        "twice": Seen(2, 1.5, ["h", "h"]),
        "changed": Seen(1, 1.5, ["other"]),
    }
    result = account(messages, seen)
    assert result.fates == {
        "once": Fate.DELIVERED,
        "twice": Fate.DUPLICATED,
        "lost": Fate.MISSING,
        "changed": Fate.CORRUPTED,
        "refused": Fate.REFUSED,
    }
    assert result.latencies_s == [0.25]
    assert result.count(Fate.MISSING) == 1


def test_refused_but_delivered_is_unconfirmed_not_a_loss() -> None:
    # A client that saw no 250 may still find the message (the reply was lost): SMTP allows it.
    result = account([sent("x", accepted=None)], {"x": Seen(1, 2.0, ["h"])})
    assert result.fates["x"] is Fate.UNCONFIRMED and result.losses == 0 and result.latencies_s == []


def test_duplicates_are_counted_apart_from_losses() -> None:
    result = account([sent("x", accepted=None), sent("y")], {"x": Seen(2, 2.0, ["h", "h"]), "y": Seen(2, 2.0, ["h", "h"])})
    assert (result.duplicates, result.losses) == (2, 0)


def test_views_disagreeing_give_the_worse_fate() -> None:
    imap = {"a": Seen(1, 1.5, ["h"]), "b": Seen(1, 1.5, ["h"])}
    pop3 = {"a": Seen(1, 9.0, ["h"]), "b": Seen(1, 9.0, ["other"])}
    result = account([sent("a"), sent("b"), sent("c")], imap, pop3)
    assert result.fates == {"a": Fate.DELIVERED, "b": Fate.CORRUPTED, "c": Fate.MISSING}
    assert result.losses == 2
    assert result.latencies_s == [0.5]  # from the first (live IMAP) view only
    assert account([sent("a")], imap, {}).fates["a"] is Fate.MISSING  # POP3 does not show it


def test_worst_follows_severity() -> None:
    assert worst([Fate.DELIVERED, Fate.MISSING, Fate.DUPLICATED]) is Fate.DUPLICATED
    assert worst([Fate.REFUSED, Fate.UNCONFIRMED]) is Fate.UNCONFIRMED


@pytest.fixture
def target(tmp_path: Path) -> Target:
    return make_target(tmp_path)


def test_plan_rotates_services_and_relays_port_25_from_another_domain(target: Target) -> None:
    plan = plan_messages(target, 6, ["submissions", "submission", "smtp"])
    assert [p.service for p in plan] == ["submissions", "submission", "smtp"] * 2
    assert all((p.sender is None) == (p.service == "smtp") for p in plan)
    assert {p.message.sender for p in plan if p.service == "smtp"} == {"load@sender.example"}
    assert len({p.message.token for p in plan}) == 6
    assert all(p.message.sender != p.message.recipient for p in plan if p.sender)


def test_plan_rejects_unknown_services(target: Target) -> None:
    with pytest.raises(ValueError, match="imaps"):
        plan_messages(target, 1, ["imaps"])


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99), percentile(values, 1.0)) == (
        50.0, 95.0, 99.0, 100.0,
    )
    assert percentile([], 0.5) == 0.0 and percentile([3.0], 0.99) == 3.0


def test_fetch_response_literals_are_paired_with_their_uids() -> None:
    from harness.census import _id_of, _literals_by_uid

    lines = [b"1 FETCH (UID 7 BODY[HEADER.FIELDS (X-Mailstack-Id)] {28}", bytearray(b"X-Mailstack-Id: abc\r\n\r\n"), b")",
             b"2 FETCH (UID 9 BODY[HEADER.FIELDS (X-Mailstack-Id)] {2}", bytearray(b"\r\n"), b")", b"Fetch completed."]
    found = _literals_by_uid(lines)
    assert [uid for uid, _ in found] == [7, 9]
    assert [_id_of(raw) for _, raw in found] == ["abc", None]
    assert _id_of(b"X-Mailstack-Id: xyz\r\n") == "xyz"  # HEADER.FIELDS without the final CRLF


def test_latency_comes_from_the_live_watcher_when_given() -> None:
    views = {"a": Seen(1, 99.0, ["h"])}
    assert account([sent("a")], views, first_seen={"a": 1.5}).latencies_s == [0.5]
    assert account([sent("a")], views, first_seen={}).latencies_s == []  # watcher never saw it: no latency
