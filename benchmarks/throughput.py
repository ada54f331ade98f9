"""End-to-end throughput and latency through the running lab, side by side with a baseline.

Usage: .venv/bin/python -m benchmarks.throughput [--messages 600] [--concurrency 1,5,10,20,40] [--repeats 3]

The stack: the load generator (harness.load) submits 4 KB messages over 465 (and 587 at
concurrency 20) with AUTH, Postfix delivers over LMTP, Dovecot stores them, the generator
sees each one in IMAP. Both with a new TLS connection per message and with sessions kept open.

The baseline, in the same run: the same client against a bare Postfix started from the same
image, its ports published the same way, delivery discarded and no AUTH (there is no Dovecot
behind it). It is the ceiling: what Postfix and the client cost without the stack's work.

At concurrency 20 each side runs --repeats times, alternately, and the median is kept; the
first pair also records where the CPU went (benchmarks.cpu_profile), in ms per message.

Then latency paced at 25, 50 and 75 % of the stack's best delivered (end-to-end) rate with a
new connection per message: the p99 from 250 to visible in IMAP, the 50 % point a median of
--repeats runs. Prints every figure and its ratio to the baseline; saves
build/bench/throughput.json.
"""

from __future__ import annotations

import argparse
import asyncio
from dataclasses import dataclass

from benchmarks.cpu_profile import CpuProfile
from benchmarks.common import container, lab_image, lab_target, ratio, save, wait_for_port
from harness.lab import free_port
from harness.load import Progress, plan_messages, run, send_all
from harness.target import Target

BODY_LINES = 55  # ~4 KB messages
LATENCY_FRACTIONS = (0.25, 0.5, 0.75)  # of the best delivered rate: where latency turns up
TARGET_FRACTION = 0.5  # issue 5: p99 under 250 ms at half the maximum throughput
BASELINE_CONFIG = [
    # Delivery discarded; 465 and 587 take mail for the domain without AUTH (no Dovecot here).
    # in_flow_delay=0: with delivery discarded, Postfix's inflow throttle (cleanup waits up to
    # 1 s for a token from the queue manager) held the baseline's kept-open rate at 207/s at
    # c=20, falling as concurrency rose, where it makes 447/s unthrottled, with the CPU two
    # thirds idle. A ceiling must not be throttled; the stack keeps Postfix's default.
    "postconf -e virtual_transport=discard: smtpd_sasl_auth_enable=no in_flow_delay=0",
    *(
        f"postconf -P {svc}/inet/smtpd_sasl_auth_enable=no {svc}/inet/smtpd_client_restrictions= "
        f"{svc}/inet/smtpd_sender_restrictions= {svc}/inet/smtpd_relay_restrictions=permit_auth_destination,reject"
        for svc in ("submission", "submissions")
    ),
    "exec postfix start-fg",
]


@dataclass
class Figure:
    target: str
    service: str
    mode: str
    concurrency: int
    accepted_per_s: float
    delivered_per_s: float | None = None
    latency_ms: dict[str, float] | None = None
    refused: int = 0
    lost: int = 0


async def measure_stack(target: Target, service: str, count: int, concurrency: int, keep_open: bool,
                        rate: float | None = None, profile: CpuProfile | None = None) -> Figure:
    """With profile, it is stopped once every message has been seen in IMAP: the CPU split
    covers sending and delivery, not the census that follows (POP3 RETR of every message)."""
    planned = plan_messages(target, count, [service], body_lines=BODY_LINES)
    seen = 0

    def on_seen(token: str) -> None:
        nonlocal seen
        seen += 1
        if profile is not None and seen == count:
            profile.stop()

    result = await run(target, planned, concurrency, 120, Progress(on_seen=on_seen), rate=rate, keep_open=keep_open)
    if profile is not None and seen < count:
        profile.stop()  # some never arrived: the window ends with the census
    return Figure("stack", service, "kept open" if keep_open else "new connection", concurrency,
                  result.accepted_per_s, result.delivered_per_s, result.latency_ms(),
                  len(result.sent) - result.accepted, result.accounting.losses + result.accounting.duplicates)


async def measure_baseline(target: Target, service: str, count: int, concurrency: int, keep_open: bool) -> Figure:
    planned = plan_messages(target, count, [service], authenticate=False, body_lines=BODY_LINES)
    loop = asyncio.get_running_loop()
    started = loop.time()
    sent = await send_all(target, planned, concurrency, lambda s: None, keep_open=keep_open)
    seconds = loop.time() - started
    accepted = sum(1 for s in sent if s.accepted_at is not None)
    return Figure("baseline", service, "kept open" if keep_open else "new connection", concurrency,
                  accepted / seconds, refused=count - accepted)


def line(figure: Figure, baseline: Figure | None) -> str:
    text = (f"{figure.target:8} {figure.service:11} {figure.mode:14} c={figure.concurrency:<3} "
            f"accepted {figure.accepted_per_s:7.1f}/s")
    if baseline:
        text += f" ({ratio(figure.accepted_per_s, baseline.accepted_per_s)} of baseline {baseline.accepted_per_s:.1f}/s)"
    if figure.delivered_per_s is not None and figure.latency_ms:
        lat = figure.latency_ms
        text += (f"  delivered {figure.delivered_per_s:6.1f}/s  250->IMAP p50 {lat['p50']:.0f} "
                 f"p95 {lat['p95']:.0f} p99 {lat['p99']:.0f} ms")
    if figure.refused or figure.lost:
        text += f"  refused {figure.refused} lost/duplicated {figure.lost}"
    return text


def median_figure(figures: list[Figure]) -> Figure:
    """The run with the median accepted rate (runs move by a third on 2 shared CPUs)."""
    ordered = sorted(figures, key=lambda f: f.accepted_per_s)
    return ordered[len(ordered) // 2]


async def side_by_side(target: Target, baseline_target: Target, service: str, count: int, concurrency: int,
                       keep_open: bool, repeats: int, profiles: dict[str, object] | None = None) -> tuple[Figure, Figure]:
    """Baseline and stack alternately, repeats times each; the median of each. With profiles,
    the first pair's CPU split is recorded too (ms per message)."""
    bases: list[Figure] = []
    stacks: list[Figure] = []
    for run_number in range(repeats):
        profile = CpuProfile().start()
        bases.append(await measure_baseline(baseline_target, service, count, concurrency, keep_open))
        if profiles is not None and run_number == 0:
            profiles["baseline"] = profile.stop().per_unit_ms(count)
        profile = CpuProfile().start()
        stacks.append(await measure_stack(target, service, count, concurrency, keep_open, profile=profile))
        if profiles is not None and run_number == 0:
            profiles["stack"] = profile.per_unit_ms(count)
    base, stack = median_figure(bases), median_figure(stacks)
    if repeats > 1:
        for label, runs in (("baseline", bases), ("stack", stacks)):
            rates = ", ".join(f"{f.accepted_per_s:.1f}" for f in runs)
            print(f"  {label} runs: {rates}/s (median taken)", flush=True)
    return base, stack


async def main_async(args: argparse.Namespace) -> int:
    target = lab_target()
    image = lab_image("postfix")
    ports = {25: free_port(), 465: free_port(), 587: free_port()}
    baseline_target = target.with_ports({**target.ports, "smtp": ports[25], "submissions": ports[465],
                                         "submission": ports[587]})
    figures: list[Figure] = []
    profiles: dict[str, object] = {}
    with container(image, ports, ["/bin/sh", "-c", "; ".join(BASELINE_CONFIG)], "mailstack-bench-baseline"):
        wait_for_port(ports[25])
        await measure_baseline(baseline_target, "submissions", 50, 5, False)  # warm-up, not counted
        await measure_stack(target, "submissions", 50, 5, False)
        for keep_open in (False, True):
            points = [("submissions", c) for c in args.concurrency] + [("submission", 20)]
            for service, concurrency in points:
                key_point = concurrency == 20
                cpu_split: dict[str, object] | None = None
                if key_point and service == "submissions":
                    cpu_split = profiles[f"465 {'kept open' if keep_open else 'new connection'} c=20"] = {}
                base, stack = await side_by_side(target, baseline_target, service, args.messages, concurrency,
                                                 keep_open, args.repeats if key_point else 1, cpu_split)
                figures += [base, stack]
                print(line(base, None), flush=True)
                print(line(stack, base), flush=True)
    # The maximum throughput is the best end-to-end (delivered) rate with a new connection per
    # message: accepting faster than that only fills the queue, and latency grows without bound.
    best = max(f.delivered_per_s or 0.0 for f in figures if f.target == "stack" and f.mode == "new connection"
               and f.service == "submissions")
    sweep = []
    for fraction in LATENCY_FRACTIONS:
        runs = [await measure_stack(target, "submissions", args.messages, 20, False, rate=best * fraction)
                for _ in range(args.repeats if fraction == TARGET_FRACTION else 1)]
        point = sorted(runs, key=lambda f: f.latency_ms["p99"])[len(runs) // 2]  # type: ignore[index]
        sweep.append({"fraction": fraction, "rate": best * fraction, "runs_p99_ms": [f.latency_ms["p99"] for f in runs],
                      **point.__dict__})  # type: ignore[index]
        print(f"latency at {fraction:.0%} of the best delivered rate ({best * fraction:.0f}/s): p50 "
              f"{point.latency_ms['p50']:.0f} ms, p99 {point.latency_ms['p99']:.0f} ms"  # type: ignore[index]
              + (f" (median of {len(runs)}; target < 250 ms)" if fraction == TARGET_FRACTION else ""), flush=True)
    half = next(point for point in sweep if point["fraction"] == TARGET_FRACTION)
    for point, split in profiles.items():
        for side, figures_ms in split.items():  # type: ignore[union-attr]
            top = ", ".join(f"{label} {ms:.2f}" for label, ms in list(figures_ms["processes"].items())[:6])
            print(f"CPU ms per message, {point}, {side}: {top}")
    path = save("throughput", {
        "messages": args.messages, "message_bytes": "about 4 KB", "repeats_at_c20": args.repeats,
        "figures": [f.__dict__ for f in figures], "best_delivered_per_s": best, "half_rate": half,
        "latency_sweep": sweep,
        "cpu_ms_per_message": profiles,
    })
    print(f"saved {path}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--concurrency", type=lambda s: [int(x) for x in s.split(",")], default=[1, 5, 10, 20, 40])
    parser.add_argument("--repeats", type=int, default=3, help="runs at concurrency 20, median taken")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
