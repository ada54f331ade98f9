"""TLS handshake cost per implicit-TLS port, next to `openssl s_server` with the same
certificates and keys as the ceiling; ECDSA against RSA; and how long the greeting takes
once the handshake is done.

Usage: .venv/bin/python -m benchmarks.handshake [--handshakes 400] [--concurrency 10]

Each handshake is a full one (no session resumption) from Python's ssl, verifying chain and
name as the harness does: TLS 1.3 as clients negotiate it (ECDSA), then TLS 1.2 restricted to
ECDHE-ECDSA or to ECDHE-RSA suites, which picks one half of the dual certificate. Server CPU
comes from the container's cgroup (cpuacct.usage, so Postfix's or Dovecot's every process is
counted) and, for s_server, from /proc/<pid>/stat.

The greeting delay is the time from the finished handshake to the server's first line. It was
43.5 ms on 465 while Postfix sent a session ticket first (Nagle held the 220 until the
client's delayed ACK); the figure guards against its return. Saves build/bench/handshake.json.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import ssl
import subprocess
import time
from pathlib import Path

from benchmarks.cpu_profile import cgroup_cpu_s
from benchmarks.common import BUILD, docker, lab_container, lab_target, ratio, save
from harness.lab import free_port
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


async def greeting_delay_ms(port: int, context: ssl.SSLContext, name: str, count: int = 30) -> float:
    """Median time from the completed handshake to the first byte of the greeting."""
    delays = []
    for _ in range(count):
        reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=context, server_hostname=name)
        started = time.perf_counter()
        await asyncio.wait_for(reader.readline(), 10)
        delays.append((time.perf_counter() - started) * 1000)
        writer.close()
    return statistics.median(delays)


def pinned_tls12(target: Target, ciphers: str) -> ssl.SSLContext:
    context = target.new_tls_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    return context


KEY_SUITES = {"ECDSA": "ECDHE-ECDSA-AES128-GCM-SHA256", "RSA": "ECDHE-RSA-AES128-GCM-SHA256"}


def cgroup_cpu_ns(container_name: str) -> int:
    seconds = cgroup_cpu_s(docker("inspect", "-f", "{{.Id}}", container_name))
    if seconds is None:
        raise RuntimeError(f"no cgroup CPU accounting found for {container_name}")
    return int(seconds * 1e9)


def process_cpu_ns(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) * 1_000_000_000 // CLOCK_TICKS


async def server_cpu_ms(container_id: str, port: int, context: ssl.SSLContext, name: str, count: int,
                        concurrency: int) -> dict[str, float]:
    await handshakes(port, context, name, 20, concurrency)  # warm-up
    before = cgroup_cpu_ns(container_id)
    per_s, failures = await handshakes(port, context, name, count, concurrency)
    return {"per_second": per_s, "server_cpu_ms": (cgroup_cpu_ns(container_id) - before) / 1e6 / count,
            "failures": failures}


async def s_server_cpu_ms(port: int, context: ssl.SSLContext, name: str, count: int) -> dict[str, float]:
    await handshakes(port, context, name, 20, 1)
    before = process_cpu_ns_of_port(port)
    per_s, failures = await handshakes(port, context, name, count, 1)
    return {"per_second": per_s, "server_cpu_ms": (process_cpu_ns_of_port(port) - before) / 1e6 / count,
            "failures": failures}


_S_SERVERS: dict[int, int] = {}  # port -> pid


def process_cpu_ns_of_port(port: int) -> int:
    return process_cpu_ns(_S_SERVERS[port])


async def main_async(args: argparse.Namespace) -> int:
    target: Target = lab_target()
    name = target.server_name
    results: dict[str, dict[str, float]] = {}
    by_key: dict[str, dict[str, float]] = {}
    greeting_ms: dict[str, float] = {}
    for service, container_service in PORT_CONTAINER.items():
        container_id = lab_container(container_service)
        port = target.port(service)
        results[service] = await server_cpu_ms(container_id, port, target.tls_context, name, args.handshakes,
                                               args.concurrency)
        for key, suite in KEY_SUITES.items():
            figures = await server_cpu_ms(container_id, port, pinned_tls12(target, suite), name, args.handshakes,
                                          args.concurrency)
            by_key[f"{service} {key}"] = figures
        greeting_ms[service] = await greeting_delay_ms(port, target.tls_context, name)

    port = free_port()
    pki = BUILD / "pki"
    server = subprocess.Popen(
        ["openssl", "s_server", "-quiet", "-accept", str(port), "-cert", str(pki / "fullchain.pem"),
         "-key", str(pki / "server.key"), "-dcert", str(pki / "fullchain-rsa.pem"), "-dkey", str(pki / "server-rsa.key"),
         "-naccept", str(4 * args.handshakes + 100)],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    _S_SERVERS[port] = server.pid
    try:
        time.sleep(0.5)
        results["openssl s_server"] = await s_server_cpu_ms(port, target.tls_context, name, args.handshakes)
        for key, suite in KEY_SUITES.items():
            by_key[f"openssl s_server {key}"] = await s_server_cpu_ms(port, pinned_tls12(target, suite), name,
                                                                      args.handshakes)
    finally:
        server.kill()
    ceiling = results["openssl s_server"]["server_cpu_ms"]
    print("TLS 1.3 (ECDSA), as clients negotiate it:")
    for label, figures in results.items():
        print(f"  {label:17} {figures['per_second']:7.1f} handshakes/s  server CPU {figures['server_cpu_ms']:.2f} ms "
              f"per handshake ({ratio(figures['server_cpu_ms'], ceiling)} of s_server)  failures {figures['failures']:.0f}")
    print("TLS 1.2, one half of the dual certificate at a time:")
    for label, figures in by_key.items():
        print(f"  {label:22} {figures['per_second']:7.1f} handshakes/s  server CPU {figures['server_cpu_ms']:.2f} ms")
    for service in PORT_CONTAINER:
        rsa, ecdsa = by_key[f"{service} RSA"]["server_cpu_ms"], by_key[f"{service} ECDSA"]["server_cpu_ms"]
        print(f"  {service}: RSA costs {ratio(rsa, ecdsa)} of ECDSA's server CPU")
    print("greeting after the handshake (median): " + ", ".join(f"{s} {ms:.1f} ms" for s, ms in greeting_ms.items()))
    path = save("handshake", {"handshakes": args.handshakes, "concurrency": args.concurrency,
                              "key": "ECDSA P-256 (RSA-2048 beside it)", "results": results, "by_key_tls12": by_key,
                              "greeting_ms": greeting_ms})
    print(f"saved {path}")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--handshakes", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=10)
    return asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    raise SystemExit(main())
