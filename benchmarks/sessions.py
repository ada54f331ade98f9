"""IMAPS and POP3S session rate: connect, log in, select, fetch one message, log out.

Usage: .venv/bin/python -m benchmarks.sessions [--sessions 600] [--concurrency 20] [--users 10] [--repeats 5]

Two Dovecot containers from the lab's image, side by side in the same run and measured
alternately (--repeats times; medians are kept): "tuned" exactly as
built (with /etc/dovecot/performance.conf) and "defaults" without that file, i.e. Debian's
process settings. Both get the same extra test users (the lab's password hash, so the lab's
password works) and one 4 KB message each; sessions are spread over the users so that no
user comes near Dovecot's per-user connection limit (mail_max_userip_connections = 10).
Saves build/bench/sessions.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import subprocess
import time
from contextlib import ExitStack

from benchmarks.cpu_profile import CpuProfile
from benchmarks.common import compose_env, container, lab_target, ratio, save, wait_for_port
from harness.lab import free_port
from harness.imap import open_imaps
from harness.mailbox import open_pop3s
from harness.message import make_message
from harness.target import Account, Target

SETUP = (
    # Extra users with the lab's first user's hash; one message in each INBOX.
    "set -e; hash=$(head -n1 /etc/dovecot/users | cut -d: -f2-); "
    "for n in $(seq 1 {users}); do echo \"bench$n@{domain}:$hash\" >> /etc/dovecot/users; done; "
    "{strip} exec /usr/local/bin/dovecot-run"
)


VARIANTS = {"defaults": "rm -f /etc/dovecot/performance.conf;", "tuned": ""}


async def imaps_session(target: Target, account: Account) -> None:
    session = await open_imaps(target, account)  # TLS, LOGIN, SELECT INBOX
    try:
        await session.fetch(1)
    finally:
        await session.logout()


async def pop3s_session(target: Target, account: Account) -> None:
    client = await open_pop3s(target, account)  # TLS, USER/PASS
    try:
        await client.stat()
        await client.retr(1)
        await client.quit()
    finally:
        await client.close()


async def rate(kind: str, target: Target, accounts: list[Account], sessions: int, concurrency: int) -> tuple[float, int]:
    session = imaps_session if kind == "imaps" else pop3s_session
    rotation = itertools.cycle(accounts)
    failures = 0
    gate = asyncio.Semaphore(concurrency)

    async def one(account: Account) -> None:
        nonlocal failures
        async with gate:
            try:
                await session(target, account)
            except Exception:  # counted, and reported next to the rate
                failures += 1

    started = time.monotonic()
    await asyncio.gather(*(one(next(rotation)) for _ in range(sessions)))
    return (sessions - failures) / (time.monotonic() - started), failures


def seed(container_id: str, accounts: list[Account]) -> None:
    for account in accounts:
        message = make_message("seed@sender.example", account.address, via="bench-seed", body_lines=55)
        done = subprocess.run(["docker", "exec", "-i", container_id, "doveadm", "save", "-u", account.address],
                              input=message.raw, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"doveadm save for {account.address} failed: {done.stderr.decode().strip()}")


async def main_async(args: argparse.Namespace) -> int:
    lab = lab_target()
    image = compose_env()["MAILSTACK_DOVECOT_IMAGE"]
    password = lab.users[0].password
    accounts = [Account(f"bench{n}@{lab.mail_domain}", password) for n in range(1, args.users + 1)]
    runs: dict[str, dict[str, list[float]]] = {v: {"imaps": [], "pop3s": []} for v in VARIANTS}
    cpu: dict[str, object] = {}
    with ExitStack() as stack:
        targets: dict[str, Target] = {}
        for variant, strip in VARIANTS.items():  # both up at once, measured alternately
            ports = {993: free_port(), 995: free_port()}
            command = SETUP.format(users=args.users, domain=lab.mail_domain, strip=strip)
            container_id = stack.enter_context(container(image, ports, ["/bin/sh", "-c", command],
                                                         f"mailstack-bench-{variant}"))
            wait_for_port(ports[993], tls=True)
            seed(container_id, accounts)
            targets[variant] = lab.with_ports({**lab.ports, "imaps": ports[993], "pop3s": ports[995]})
            for kind in ("imaps", "pop3s"):
                await rate(kind, targets[variant], accounts, 40, args.concurrency)  # warm-up
        for repeat in range(args.repeats):
            for variant, target in targets.items():
                for kind in ("imaps", "pop3s"):
                    profile = CpuProfile().start() if repeat == 0 and kind == "imaps" else None
                    per_s, failures = await rate(kind, target, accounts, args.sessions, args.concurrency)
                    if profile:
                        cpu[variant] = profile.stop().per_unit_ms(args.sessions)
                    runs[variant][kind].append(per_s)
                    print(f"{variant:8} {kind}: {per_s:6.1f} sessions/s ({failures} failed)", flush=True)
    results = {v: {k: statistics.median(r) for k, r in kinds.items()} for v, kinds in runs.items()}
    for kind in ("imaps", "pop3s"):
        print(f"{kind}: tuned {results['tuned'][kind]:.1f}/s, defaults {results['defaults'][kind]:.1f}/s (medians of "
              f"{args.repeats}): {ratio(results['tuned'][kind], results['defaults'][kind])} of Debian's defaults")
    for variant, split in cpu.items():
        top = ", ".join(f"{label} {ms:.2f}" for label, ms in list(split["processes"].items())[:6])  # type: ignore[index]
        boxes = ", ".join(f"{name} {ms:.2f}" for name, ms in split["containers"].items()  # type: ignore[index]
                          if name.startswith("mailstack-bench"))
        print(f"CPU ms per IMAPS session, {variant}: {top}; container totals (exited processes too): {boxes}")
    path = save("sessions", {"sessions": args.sessions, "concurrency": args.concurrency, "users": args.users,
                             "repeats": args.repeats, "per_second": results, "runs": runs,
                             "cpu_ms_per_imaps_session": cpu})
    print(f"saved {path}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--users", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=5, help="alternating runs per variant; medians are kept")
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
