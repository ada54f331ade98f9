"""Shared by the benchmark scripts: the lab's target and images, a results folder, and
containers started for a baseline (always removed afterwards)."""

from __future__ import annotations

import json
import os
import platform
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from harness.target import Target, load_target

REPO_ROOT = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("MAILSTACK_BUILD_DIR", REPO_ROOT / "build"))  # another lab's build dir
RESULTS_DIR = REPO_ROOT / "build" / "bench"


def lab_target(path: Path = BUILD / "target.json") -> Target:
    if not path.is_file():
        raise SystemExit(f"{path} not found: start the lab first (`make up`)")
    return load_target(path)


def compose_env(path: Path = BUILD / "compose.env") -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
    return {key: value for key, value in pairs}


def lab_container(service: str) -> str:
    """The id of the lab's running container of a compose service."""
    container_id = docker("compose", "-p", compose_env()["MAILSTACK_PROJECT"], "ps", "-q", service)
    if not container_id:
        raise SystemExit(f"the lab's {service} container is not running: start the lab first (`make up`)")
    return container_id


def lab_image(service: str) -> str:
    """The image the lab's container runs, by id. Not by tag: `pytest harness` builds the same
    tag with its own CA and accounts, and a container from that would fail the lab's TLS checks."""
    return docker("inspect", "--format", "{{.Image}}", lab_container(service))


def docker(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(["docker", *args], capture_output=True, text=True,
                          env={**os.environ, **env} if env else None)
    if done.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args[:3])} ... failed: {done.stderr.strip()}")
    return done.stdout.strip()


@contextmanager
def container(image: str, ports: dict[int, int], command: Sequence[str], name: str,
              env: dict[str, str] | None = None) -> Iterator[str]:
    """docker run -d with container ports published on 127.0.0.1; removed on exit. env is
    handed over by name only (`-e NAME`), so no value appears on a command line."""
    subprocess.run(["docker", "rm", "-f", name], capture_output=True)
    published = [arg for inner, outer in ports.items() for arg in ("-p", f"127.0.0.1:{outer}:{inner}")]
    passed = [arg for key in (env or {}) for arg in ("-e", key)]
    container_id = docker("run", "-d", "--name", name, "--no-healthcheck", *published, *passed,
                          "--entrypoint", command[0], image, *command[1:], env=env)
    try:
        yield container_id
    finally:
        subprocess.run(["docker", "rm", "-f", container_id], capture_output=True)


def wait_for_port(port: int, timeout_s: float = 30.0, tls: bool = False) -> None:
    """Until a greeting arrives (after a TLS handshake, unverified, for implicit-TLS ports)."""
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    give_up = time.monotonic() + timeout_s
    while time.monotonic() < give_up:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as raw:
                raw.settimeout(2)
                sock = context.wrap_socket(raw) if tls else raw
                if sock.recv(64):
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} within {timeout_s:.0f} s")


def userland_proxy_running() -> bool:
    """Whether Docker's userland proxy copies published ports (a docker-proxy process exists
    while containers publish ports); without it, the kernel's NAT forwards them."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "docker-proxy":
                return True
        except OSError:
            continue
    return False


def machine() -> dict[str, object]:
    return {"cpus": os.cpu_count(), "kernel": platform.release(), "python": platform.python_version(),
            "docker": docker("version", "-f", "{{.Server.Version}}"), "userland_proxy": userland_proxy_running()}


def save(name: str, data: dict[str, object]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps({"benchmark": name, "machine": machine(), **data}, indent=2))
    return path


def ratio(value: float, baseline: float) -> str:
    return f"{value / baseline:.2f}x" if baseline else "n/a"
