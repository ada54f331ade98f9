"""Bring this repository's lab up for the tests, through testcontainers' DockerCompose.

The images come from `python -m stack build` (run as a command: the harness does not
import stack). Host ports are picked free so that a running `make up` lab is not disturbed,
and the compose project has its own name and volumes, removed at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from testcontainers.compose import DockerCompose

from harness.target import SERVICES, Target, load_target

REPO_ROOT = Path(__file__).resolve().parent.parent
LOG_TAIL_LINES = 40


class LabUnavailable(RuntimeError):
    """The lab could not be built or started; the message says why and how to fix it."""


def user_image_prefix() -> str:
    """This checkout's image prefix as stack reads it (MAILSTACK_IMAGE_PREFIX, else
    mailstack.toml's image_prefix, else "mailstack"): the harness names its labs' images
    <prefix>-<lab>, and `make clean` removes <prefix>-test."""
    if "MAILSTACK_IMAGE_PREFIX" in os.environ:
        return os.environ["MAILSTACK_IMAGE_PREFIX"]
    try:
        return str(tomllib.loads((REPO_ROOT / "mailstack.toml").read_text()).get("image_prefix", "mailstack"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return "mailstack"  # `stack build` reports a broken file itself


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_stack(build_dir: Path, *args: str, env: Mapping[str, str] | None = None) -> str:
    """`python -m stack --build-dir build_dir <args>` (what `make up` runs), with env over this
    process's environment; its stdout, or LabUnavailable with its stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "stack", "--build-dir", str(build_dir), *args],
        cwd=REPO_ROOT, env={**os.environ, **(env or {})}, capture_output=True, text=True,
    )
    if done.returncode != 0:
        raise LabUnavailable(f"`python -m stack {' '.join(args)}` failed (exit {done.returncode}):\n{done.stderr}")
    return done.stdout


def build(build_dir: Path, env: dict[str, str] | None = None) -> Target:
    """Run `python -m stack build` into build_dir and load the target it describes."""
    run_stack(build_dir, "build", env=env)
    return load_target(build_dir / "target.json")


def _env_file(build_dir: Path, project: str, ports: dict[str, int], directory: Path) -> Path:
    lines = [
        line
        for line in (build_dir / "compose.env").read_text().splitlines()
        if line and not line.startswith(("MAILSTACK_PORT_", "MAILSTACK_PROJECT="))
    ]
    lines.append(f"MAILSTACK_PROJECT={project}")
    lines += [f"MAILSTACK_PORT_{service.upper()}={port}" for service, port in ports.items()]
    path = directory / f"{project}.env"
    path.write_text("\n".join(lines) + "\n")
    return path


@dataclass(frozen=True)
class RunningLab:
    """A lab this process started: its target, and control over its containers."""

    target: Target
    compose: DockerCompose
    project: str
    build_dir: Path

    def stack(self, *args: str) -> str:
        """`python -m stack <args>` aimed at this lab (its build dir and compose project)."""
        return run_stack(self.build_dir, *args, env={"MAILSTACK_COMPOSE_PROJECT": self.project})

    def compose_run(self, *args: str) -> str:
        done = subprocess.run(
            [*self.compose.compose_command_property, *args], cwd=REPO_ROOT, capture_output=True, text=True
        )
        if done.returncode != 0:
            raise LabUnavailable(f"docker compose {' '.join(args)} failed: {done.stderr.strip()}")
        return done.stdout

    def stop(self, service: str) -> None:
        self.compose_run("stop", service)

    def start(self, service: str) -> None:
        self.compose_run("start", service)

    def exec(self, service: str, *command: str) -> str:
        return self.compose_run("exec", "-T", service, *command)

    def container_state(self, service: str) -> ContainerState:
        """The service's container as Docker sees it now (id, pid, restarts, health)."""
        container_id = self.compose_run("ps", "-q", "--all", service).strip()
        if not container_id:
            raise LabUnavailable(f"no container for service {service}")
        done = subprocess.run(["docker", "inspect", container_id], capture_output=True, text=True)
        if done.returncode != 0:
            raise LabUnavailable(f"docker inspect {service} failed: {done.stderr.strip()}")
        info = json.loads(done.stdout)[0]
        state = info["State"]
        return ContainerState(
            container_id, state["Status"], state.get("Pid", 0), info["RestartCount"], state["StartedAt"],
            state.get("Health", {}).get("Status", ""),
        )

    def crash(self, service: str) -> ContainerState:
        """SIGKILL the container's main process from the host, as a crash or the OOM killer
        would. (`docker kill` would count as a deliberate stop and disable the restart policy.)"""
        before = self.container_state(service)
        if before.pid <= 0:
            raise LabUnavailable(f"{service} is not running (state {before.status})")
        try:
            os.kill(before.pid, signal.SIGKILL)
        except PermissionError as exc:
            raise LabUnavailable(
                f"cannot kill {service}'s process {before.pid} from this user: the crash tests need root "
                "(CI runs as root), since `docker kill` would disable the restart policy under test"
            ) from exc
        return before

    def logs(self, service: str) -> str:
        return self.compose_run("logs", "--no-color", "--no-log-prefix", service)


@dataclass(frozen=True)
class ContainerState:
    id: str
    status: str  # running, restarting, exited...
    pid: int  # on the host; 0 when not running
    restart_count: int
    started_at: str
    health: str  # healthy, starting, unhealthy, or "" without a health check


@contextmanager
def running_lab(
    build_dir: Path,
    project: str,
    scratch: Path,
    services: Sequence[str] | None = None,
    overrides: Sequence[Path] = (),
) -> Iterator[RunningLab]:
    """Start the lab built in build_dir on free host ports; stop it and drop its volumes after."""
    os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")  # the reaper image cannot be pulled here
    target = load_target(build_dir / "target.json")
    ports = {service: free_port() for service in SERVICES}
    compose = DockerCompose(
        REPO_ROOT,
        compose_file_name=["compose.yaml", *(str(o) for o in overrides)],
        env_file=str(_env_file(build_dir, project, ports, scratch)),
        pull=False,
        build=False,
        wait=True,
        services=list(services) if services else None,
    )
    try:
        compose.start()
    except subprocess.CalledProcessError as exc:
        stdout, stderr = compose.get_logs()
        compose.stop()
        tail = "\n".join((stdout + stderr).splitlines()[-LOG_TAIL_LINES:])
        raise LabUnavailable(f"docker compose up failed: {exc}\n--- last {LOG_TAIL_LINES} log lines ---\n{tail}") from exc
    try:
        yield RunningLab(target.with_ports(ports), compose, project, build_dir)
    finally:
        compose.stop()
