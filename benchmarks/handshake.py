"""TLS handshake cost per implicit-TLS port, next to `openssl s_server` with the same
certificate and key as the ceiling.

Usage: .venv/bin/python -m benchmarks.handshake [--handshakes 400] [--concurrency 10]

Each handshake is a full one (no session resumption) from Python's ssl, verifying chain and
name as the harness does. Server CPU comes from the container's cgroup (cpuacct.usage, so
Postfix's or Dovecot's every process is counted) and, for s_server, from /proc/<pid>/stat.
Saves build/bench/handshake.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import subprocess
import time
from pathlib import Path

from benchmarks.common import BUILD, compose_env, docker, free_port, lab_target, ratio, save
from harness.target import Target

PORT_CONTAINER = {"submissions": "postfix", "imaps": "dovecot", "pop3s": "dovecot"}
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


async def handshakes(port: int, context: ssl.SSLContext, name: str, count: int, concurrency: int) -> tuple[float, int]:
    """(handshakes per second, failures)."""
    gate = asyncio.Semaphore(concurrency)
    failures = 0

    async def one() -> None:
        nonlocal failures
        async with gate:
            try:
                _, writer = await asyncio.wait_for(
                    asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=name), 10)
                writer.close()
            except (OSError, ssl.SSLError, asyncio.TimeoutError):
                failures += 1

    started = time.monotonic()
    await asyncio.gather(*(one() for _ in range(count)))
    return count / (time.monotonic() - started), failures


def cgroup_cpu_ns(container_name: str) -> int:
    container_id = docker("inspect", "-f", "{{.Id}}", container_name)
    for path in (Path(f"/sys/fs/cgroup/cpuacct/docker/{container_id}/cpuacct.usage"),
                 Path(f"/sys/fs/cgroup/system.slice/docker-{container_id}.scope/cpu.stat")):
        if path.name == "cpuacct.usage" and path.exists():
            return int(path.read_text())
        if path.exists():  # cgroup v2: usage_usec
            fields = dict(line.split() for line in path.read_text().splitlines())
            return int(fields["usage_usec"]) * 1000
    raise RuntimeError(f"no cgroup CPU accounting found for {container_name}")


def process_cpu_ns(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // CLOCK_TICKS


def lab_container(service: str) -> str:
    return docker("compose", "-p", compose_env()["MAILSTACK_PROJECT"], "ps", "-q", service)


async def main_async(args: argparse.Namespace) -> int:
    target: Target = lab_target()
    context = target.tls_context
    results: dict[str, dict[str, float]] = {}
    for service, container_service in PORT_CONTAINER.items():
        container_id = lab_container(container_service)
        await handshakes(target.port(service), context, target.server_name, 20, args.concurrency)  # warm-up
        before = cgroup_cpu_ns(container_id)
        per_s, failures = await handshakes(target.port(service), context, target.server_name,
                                           args.handshakes, args.concurrency)
        cpu_ms = (cgroup_cpu_ns(container_id) - before) / 1e6 / args.handshakes
        results[service] = {"per_second": per_s, "server_cpu_ms": cpu_ms, "failures": failures}

    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-quiet", "-accept", str(port), "-cert", str(BUILD / "pki" / "fullchain.pem"),
         "-key", str(BUILD / "pki" / "server.key"), "-naccept", str(args.handshakes + 40)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        time.sleep(0.5)
        await handshakes(port, context, target.server_name, 20, 1)
        before = process_cpu_ns(server.pid)
        per_s, failures = await handshakes(port, context, target.server_name, args.handshakes, 1)
        cpu_ms = (process_cpu_ns(server.pid) - before) / 1e6 / args.handshakes
        results["openssl s_server"] = {"per_second": per_s, "server_cpu_ms": cpu_ms, "failures": failures}
    finally:
        server.kill()
    ceiling = results["openssl s_server"]["server_cpu_ms"]
    for name, figures in results.items():
        print(f"{name:17} {figures['per_second']:7.1f} handshakes/s  server CPU {figures['server_cpu_ms']:.2f} ms "
              f"per handshake ({ratio(figures['server_cpu_ms'], ceiling)} of s_server)  failures {figures['failures']:.0f}")
    path = save("handshake", {"handshakes": args.handshakes, "concurrency": args.concurrency,
                              "key": "ECDSA P-256", "results": results})
    print(f"saved {path}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handshakes", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=10)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
