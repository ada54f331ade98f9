"""`mailstack check`: a port-by-port verdict on a mail host; `mailstack load`: exactly-once
accounting of N messages sent under load (also `python -m harness ...`).

Exit status: 0 every check passed (skips allowed), 1 a check failed, 2 usage or target
error, 3 target unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from harness import load, report
from harness.accounting import LOSSES, Fate, Sent
from harness.checks import Status
from harness.errors import HarnessError, TargetError
from harness.policy import RFC8314, Tls, service_policy
from harness.runner import DEFAULT_CONCURRENCY, plan, reachable, run_checks
from harness.target import Account, Target, load_target

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_UNREACHABLE = 0, 1, 2, 3


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailstack", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    check = sub.add_parser("check", help="run every check the port policy calls for")
    check.add_argument("--target", type=Path, help="target/policy file (the lab's: build/target.json)")
    check.add_argument("--host", default="127.0.0.1", help="only 127.0.0.1 is allowed")
    check.add_argument("--server-name", help="name the certificate must be valid for")
    check.add_argument("--ca", type=Path, help="CA file to verify against")
    check.add_argument("--user", action="append", default=[], metavar="ADDRESS:PASSWORD",
                       help="an account (give two: sender and recipient)")
    check.add_argument("--port", action="append", default=[], metavar="SERVICE=PORT",
                       help=f"host port of a service ({', '.join(RFC8314)}); default: the standard port, "
                            "or the target file's")
    check.add_argument("--closed", action="append", default=[], metavar="SERVICE",
                       help="a service the policy says must be closed (e.g. imap, pop3); applies over a target file too")
    check.add_argument("--size-limit", type=int, default=10 * 1024 * 1024, help="the server's SIZE in bytes")
    check.add_argument("--only", action="append", default=[], metavar="GLOB",
                       help="run only check ids matching (e.g. 'smtp.587.*', '*.tls-versions')")
    check.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    check.add_argument("--json", type=Path, help="write a JSON report here")
    check.add_argument("--junit", type=Path, help="write a JUnit XML report here")
    load = sub.add_parser("load", help="send N messages, read every mailbox back, account for each")
    load.add_argument("--target", type=Path, required=True, help="target file (the lab's: build/target.json)")
    load.add_argument("-n", "--count", type=int, default=200, help="messages to send (default 200, at most 100000)")
    load.add_argument("-c", "--concurrency", type=int, default=20, help="sessions at once (default 20, at most 200)")
    load.add_argument("--services", default="submissions,submission",
                      help="services in rotation: submissions (465), submission (587), smtp (25, relayed in)")
    load.add_argument("--deadline", type=float, default=120.0, help="seconds to wait for delivery after the last send (default 120)")
    load.add_argument("--rate", type=float, help="messages per second at most (default: as fast as -c allows)")
    load.add_argument("--keep-open", action="store_true",
                      help="each of the -c workers keeps its sessions open (default: a new connection per message)")
    load.add_argument("--json", type=Path, help="write the per-message accounting here")
    return parser


def port_overrides(items: list[str]) -> dict[str, int]:
    """--port SERVICE=PORT arguments, checked."""
    ports: dict[str, int] = {}
    for item in items:
        name, _, number = item.partition("=")
        if name not in RFC8314 or not number.isdigit() or not 1 <= int(number) <= 65535:
            raise TargetError(f"--port {item!r}: use SERVICE=PORT with SERVICE one of {', '.join(RFC8314)} "
                              "and PORT 1..65535")
        ports[name] = int(number)
    return ports


def closed_services(items: list[str]) -> set[str]:
    unknown = sorted(set(items) - set(RFC8314))
    if unknown:
        raise TargetError(f"--closed {', '.join(unknown)}: not a service; use one of {', '.join(RFC8314)}")
    return set(items)


def target_from_args(args: argparse.Namespace) -> Target:
    """The target file, with --port and --closed applied over it; or a target built from flags."""
    ports, closed = port_overrides(args.port), closed_services(args.closed)
    if args.target:
        target = load_target(args.target)
        services = dict(target.services)
        for name, port in ports.items():
            services[name] = replace(services.get(name) or service_policy(name, port), port=port)
        for name in closed:
            services[name] = replace(services.get(name) or service_policy(name, RFC8314[name][1]), tls=Tls.CLOSED)
        return replace(target, services=services)
    if not (args.server_name and args.ca and len(args.user) >= 2):
        raise TargetError("give --target FILE, or --server-name, --ca and two --user ADDRESS:PASSWORD")
    ports = {name: spec[1] for name, spec in RFC8314.items()} | ports
    users = []
    for item in args.user:
        address, sep, password = item.partition(":")
        if not sep or "@" not in address:
            raise TargetError(f"--user {address!r}...: use ADDRESS:PASSWORD")
        users.append(Account(address, password))
    return Target(
        host=args.host,
        server_name=args.server_name,
        mail_domain=users[0].address.rpartition("@")[2],
        ca_file=args.ca,
        services={n: service_policy(n, p, Tls.CLOSED if n in closed else None) for n, p in ports.items()},
        users=tuple(users),
        message_size_limit=args.size_limit,
    )


async def check(args: argparse.Namespace, console: Console) -> int:
    if not 1 <= args.concurrency <= 200:
        raise TargetError("--concurrency must be 1..200")
    target = target_from_args(args)
    if args.only and not plan(target, args.only):
        raise TargetError(f"--only {' '.join(args.only)}: no check id matches (ids look like 'smtp.587.starttls'; "
                          "a run without --only lists them all)")
    if not await reachable(target):
        console.print(f"[red]unreachable:[/] no port of {target.host} accepts a connection")
        return EXIT_UNREACHABLE
    started = time.monotonic()
    with console.status("checking…") as status:
        done = 0

        def progress(result: object) -> None:
            nonlocal done
            done += 1
            status.update(f"checking… {done} done")

        results = await run_checks(target, args.only, args.concurrency, on_result=progress)
    seconds = time.monotonic() - started
    report.print_console(console, target, results, seconds)
    if args.json:
        report.write(args.json, report.to_json(target, results, seconds))
    if args.junit:
        report.write(args.junit, report.to_junit(results, seconds))
    bad = any(r.status in (Status.FAIL, Status.ERROR) for r in results)
    return EXIT_FAILED if bad or not results else EXIT_OK


async def run_load(args: argparse.Namespace, console: Console) -> int:
    if not (1 <= args.count <= 100_000 and 1 <= args.concurrency <= 200 and 1 <= args.deadline <= 3600):
        raise TargetError("--count must be 1..100000, --concurrency 1..200 and --deadline 1..3600")
    if args.rate is not None and not 0.1 <= args.rate <= 10_000:
        raise TargetError("--rate must be 0.1..10000 messages per second")
    target = load_target(args.target)
    if not await reachable(target):
        console.print(f"[red]unreachable:[/] no port of {target.host} accepts a connection (is the lab up?)")
        return EXIT_UNREACHABLE
    services = [s.strip() for s in args.services.split(",") if s.strip()]
    try:
        planned = load.plan_messages(target, args.count, services)
    except ValueError as exc:
        raise TargetError(str(exc)) from exc
    bars = Progress(
        TextColumn("{task.description:<10}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[note]}"),
        TimeElapsedColumn(), console=console, transient=not console.is_terminal,
        disable=not console.is_terminal,
    )
    sending = bars.add_task("250", total=args.count, note="")
    reading = bars.add_task("in IMAP", total=args.count, note="")
    refused = 0

    def on_sent(sent: Sent) -> None:
        nonlocal refused
        refused += sent.accepted_at is None
        bars.update(sending, advance=1, note=f"refused {refused}" if refused else "")

    with bars:
        result = await load.run(
            target, planned, args.concurrency, args.deadline,
            load.Progress(on_sent=on_sent, on_seen=lambda token: bars.update(reading, advance=1)),
            rate=args.rate, keep_open=args.keep_open,
        )
    mode = "sessions kept open" if args.keep_open else "a new connection each"
    console.print(load_table(result, f"{args.count} messages, concurrency {args.concurrency}, {mode}, over {', '.join(services)}"))
    for error, times in list(result.errors().items())[:5]:
        console.print(f"[yellow]refused {times}x:[/] {error}")
    if args.json:
        report.write(args.json, json.dumps({"concurrency": args.concurrency, "services": services,
                                            "keep_open": args.keep_open, **result.to_json()},
                                           indent=2))
    # Without a fault there is no excuse for a duplicate either.
    return EXIT_FAILED if result.accounting.losses or result.accounting.duplicates else EXIT_OK


def load_table(result: load.LoadResult, title: str) -> Table:
    table = Table(title=title)
    table.add_column("figure")
    table.add_column("value", justify="right")
    for fate in Fate:
        style = "red" if fate in (*LOSSES, Fate.DUPLICATED) and result.accounting.count(fate) else ""
        table.add_row(fate.value, f"[{style}]{result.accounting.count(fate)}[/]" if style else str(result.accounting.count(fate)))
    table.add_row("accepted / s", f"{result.accepted_per_s:.1f}")
    table.add_row("delivered / s (to visible)", f"{result.delivered_per_s:.1f}")
    for label, value in result.latency_ms().items():
        table.add_row(f"latency 250 -> IMAP {label}", f"{value:.0f} ms")
    return table


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Logs and CI are not terminals: give the ports × checks table room instead of 80 columns.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    try:
        if args.command == "load":
            return asyncio.run(run_load(args, console))
        return asyncio.run(check(args, console))
    except TargetError as exc:
        console.print(f"[red]target error:[/] {escape(str(exc))}")
        return EXIT_USAGE
    except (HarnessError, OSError) as exc:  # the host went away, or refused the target's accounts
        console.print(f"[red]error:[/] {escape(str(exc) or type(exc).__name__)} ({type(exc).__name__})")
        return EXIT_UNREACHABLE


if __name__ == "__main__":
    sys.exit(main())
