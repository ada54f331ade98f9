"""Exactly-once accounting: every message gets exactly one fate."""

from __future__ import annotations

from harness.load import Fate, Seen, Sent, account, percentile


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


def test_refused_but_delivered_still_counts_as_delivered() -> None:
    # A client that saw no 250 may still find the message (SMTP allows it); not a loss.
    assert account([sent("x", accepted=None)], {"x": Seen(1, 2.0, ["h"])}).fates["x"] is Fate.DELIVERED


def test_percentile_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert (percentile(values, 0.5), percentile(values, 0.95), percentile(values, 0.99), percentile(values, 1.0)) == (
        50.0, 95.0, 99.0, 100.0,
    )
    assert percentile([], 0.5) == 0.0 and percentile([3.0], 0.99) == 3.0
