"""`mailstack check` (or `python -m harness check`): a port-by-port verdict on a mail host.

Exit status: 0 every check passed (skips allowed), 1 a check failed, 2 usage or target
error, 3 target unreachable.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

from rich.console import Console

from harness import report
from harness.checks import Status
from harness.errors import TargetError
from harness.policy import RFC8314, Tls, service_policy
from harness.runner import DEFAULT_CONCURRENCY, reachable, run_checks
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
                       help=f"host port of a service ({', '.join(RFC8314)}); default: the standard port")
    check.add_argument("--closed", action="append", default=[], metavar="SERVICE",
                       help="a service the policy says must be closed (e.g. imap, pop3)")
    check.add_argument("--size-limit", type=int, default=10 * 1024 * 1024, help="the server's SIZE in bytes")
    check.add_argument("--only", action="append", default=[], metavar="GLOB",
                       help="run only check ids matching (e.g. 'smtp.587.*', '*.tls-versions')")
    check.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY)
    check.add_argument("--json", type=Path, help="write a JSON report here")
    check.add_argument("--junit", type=Path, help="write a JUnit XML report here")
    return parser


def target_from_args(args: argparse.Namespace) -> Target:
    if args.target:
        return load_target(args.target)
    if not (args.server_name and args.ca and len(args.user) >= 2):
        raise TargetError("give --target FILE, or --server-name, --ca and two --user ADDRESS:PASSWORD")
    ports = {name: spec[1] for name, spec in RFC8314.items()}
    for item in args.port:
        name, _, number = item.partition("=")
        if name not in RFC8314 or not number.isdigit():
            raise TargetError(f"--port {item!r}: use SERVICE=PORT with SERVICE one of {', '.join(RFC8314)}")
        ports[name] = int(number)
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
        services={n: service_policy(n, p, Tls.CLOSED if n in args.closed else None) for n, p in ports.items()},
        users=tuple(users),
        message_size_limit=args.size_limit,
    )


async def check(args: argparse.Namespace, console: Console) -> int:
    target = target_from_args(args)
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


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Logs and CI are not terminals: give the ports × checks table room instead of 80 columns.
    console = Console(highlight=False, width=None if sys.stdout.isatty() else 120)
    try:
        return asyncio.run(check(args, console))
    except TargetError as exc:
        console.print(f"[red]target error:[/] {exc}")
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
