"""IMAPS and POP3S session rate: connect, log in, select, fetch one message, log out.

Usage: .venv/bin/python -m benchmarks.sessions [--sessions 600] [--concurrency 20] [--users 10] [--repeats 5]

Two Dovecot containers from the lab's image, side by side in the same run and measured
alternately (--repeats times; medians are kept): "tuned" exactly as
built (with /etc/dovecot/performance.conf) and "defaults" without that file, i.e. Debian's
process settings. Both get the same extra test users (the lab's password hash, so the lab's
password works) and one 4 KB message each; sessions are spread over the users so that no
user comes near Dovecot's per-user connection limit (mail_max_userip_connections = 10).

Then a diagnostic, IMAPS only: both variants again with the bench users' SHA512-CRYPT hash
replaced by a salted SHA512 (SSHA512), which costs microseconds. Both variants pay the same
password hash on every login, so it caps the ratio; the diagnostic measures by how much. The
lab itself never uses such a hash. Saves build/bench/sessions.json.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import statistics
import subprocess
import time
from contextlib import ExitStack
from dataclasses import dataclass

from benchmarks.cpu_profile import CpuProfile
from benchmarks.common import container, lab_image, lab_target, ratio, save, wait_for_port
from harness.lab import free_port
from harness.imap import open_imaps
from harness.mailbox import open_pop3s
from harness.message import make_message
from harness.target import Account, Target

SETUP = (
    # Extra users with the given hash (and the lab's password); one message in each INBOX.
    "set -e; hash={hash}; "
    "for n in $(seq 1 {users}); do echo \"bench$n@{domain}:$hash\" >> /etc/dovecot/users; done; "
    "{prepare} exec /usr/local/bin/dovecot-run"
)
LAB_HASH = "$(head -n1 /etc/dovecot/users | cut -d: -f2-)"  # the lab's SHA512-CRYPT, with its fields
CHEAP_HASH = '"$(doveadm pw -s SSHA512 -p "$BENCH_PASSWORD")::::::"'  # diagnostic only
DEFAULTS = "rm -f /etc/dovecot/performance.conf;"


@dataclass(frozen=True)
class Variant:
    prepare: str  # shell run before Dovecot starts
    password_hash: str
    kinds: tuple[str, ...]


VARIANTS = {
    "defaults": Variant(DEFAULTS, LAB_HASH, ("imaps", "pop3s")),
    "tuned": Variant("", LAB_HASH, ("imaps", "pop3s")),
    "defaults, SSHA512": Variant(DEFAULTS, CHEAP_HASH, ("imaps",)),
    "tuned, SSHA512": Variant("", CHEAP_HASH, ("imaps",)),
}
MAIN = ("defaults", "tuned")  # the target's two; the others are the diagnostic


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
    """Sessions/s and the number that failed; a run in which more than a tenth fail is an error,
    not a figure."""
    session = imaps_session if kind == "imaps" else pop3s_session
    rotation = itertools.cycle(accounts)
    errors: list[Exception] = []
    gate = asyncio.Semaphore(concurrency)

    async def one(account: Account) -> None:
        async with gate:
            try:
                await session(target, account)
            except Exception as error:  # counted, and reported next to the rate
                errors.append(error)

    started = time.monotonic()
    await asyncio.gather(*(one(next(rotation)) for _ in range(sessions)))
    if len(errors) > sessions // 10:
        raise RuntimeError(f"{kind} on port {target.port(kind)}: {len(errors)} of {sessions} sessions failed, "
                           f"the first with {errors[0]!r}")
    return (sessions - len(errors)) / (time.monotonic() - started), len(errors)


def seed(container_id: str, accounts: list[Account]) -> None:
    for account in accounts:
        message = make_message("seed@sender.example", account.address, via="bench-seed", body_lines=55)
        done = subprocess.run(["docker", "exec", "-i", container_id, "doveadm", "save", "-u", account.address],
                              input=message.raw, capture_output=True)
        if done.returncode != 0:
            raise RuntimeError(f"doveadm save for {account.address} failed: {done.stderr.decode().strip()}")


async def main_async(args: argparse.Namespace) -> int:
    lab = lab_target()
    image = lab_image("dovecot")
    password = lab.users[0].password
    accounts = [Account(f"bench{n}@{lab.mail_domain}", password) for n in range(1, args.users + 1)]
    runs: dict[str, dict[str, list[float]]] = {name: {k: [] for k in v.kinds} for name, v in VARIANTS.items()}
    cpu: dict[str, object] = {}
    with ExitStack() as stack:
        targets: dict[str, Target] = {}
        for name, variant in VARIANTS.items():  # all up at once, measured alternately
            ports = {993: free_port(), 995: free_port()}
            command = SETUP.format(hash=variant.password_hash, users=args.users, domain=lab.mail_domain,
                                   prepare=variant.prepare)
            container_id = stack.enter_context(container(image, ports, ["/bin/sh", "-c", command],
                                                         f"mailstack-bench-{name.replace(', ', '-').lower()}",
                                                         env={"BENCH_PASSWORD": password}))
            wait_for_port(ports[993], tls=True)
            seed(container_id, accounts)
            targets[name] = lab.with_ports({**lab.ports, "imaps": ports[993], "pop3s": ports[995]})
            for kind in variant.kinds:
                await rate(kind, targets[name], accounts, 40, args.concurrency)  # warm-up
        for repeat in range(args.repeats):
            for name, target in targets.items():
                for kind in VARIANTS[name].kinds:
                    profile = CpuProfile().start() if repeat == 0 and kind == "imaps" and name in MAIN else None
                    per_s, failures = await rate(kind, target, accounts, args.sessions, args.concurrency)
                    if profile:
                        cpu[name] = profile.stop().per_unit_ms(args.sessions)
                    runs[name][kind].append(per_s)
                    print(f"{name:18} {kind}: {per_s:6.1f} sessions/s ({failures} failed)", flush=True)
    results = {name: {k: statistics.median(r) for k, r in kinds.items()} for name, kinds in runs.items()}
    for kind in ("imaps", "pop3s"):
        print(f"{kind}: tuned {results['tuned'][kind]:.1f}/s, defaults {results['defaults'][kind]:.1f}/s (medians of "
              f"{args.repeats}): {ratio(results['tuned'][kind], results['defaults'][kind])} of Debian's defaults")
    cheap = results["tuned, SSHA512"]["imaps"], results["defaults, SSHA512"]["imaps"]
    print(f"diagnostic, SSHA512 instead of SHA512-CRYPT: tuned {cheap[0]:.1f}/s "
          f"({ratio(cheap[0], results['tuned']['imaps'])} of tuned with the lab's hash), defaults {cheap[1]:.1f}/s: "
          f"{ratio(*cheap)} of Debian's defaults")
    for name, split in cpu.items():
        top = ", ".join(f"{label} {ms:.2f}" for label, ms in list(split["processes"].items())[:6])  # type: ignore[index]
        boxes = ", ".join(f"{box} {ms:.2f}" for box, ms in split["containers"].items()  # type: ignore[index]
                          if box.startswith("mailstack-bench") and ms > 0)
        print(f"CPU ms per IMAPS session, {name}: {top}; container totals (exited processes too): {boxes}")
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
