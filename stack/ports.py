"""Host ports, checked before `up` changes anything.

Compose finds a taken port only after it has replaced the running lab's containers and
build/ holds the new settings: the lab would be down and `make check-lab` aimed at the port
that failed. Checked first, a taken port costs nothing: the running lab and build/ stay as
they were.
"""

from __future__ import annotations

import errno
import socket
from collections.abc import Collection, Mapping

import docker

from stack.settings import HostPorts

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    """A port nothing listens on now, to suggest in an error message."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


def taken(wanted: Mapping[str, int], own: Collection[int]) -> dict[str, int]:
    """The services whose host port another process holds on 127.0.0.1; own are the ports
    this lab publishes now (its containers give them up when they are replaced). Only
    "address in use" counts: a port an unprivileged user may not bind is not taken."""
    busy: dict[str, int] = {}
    for service, port in wanted.items():
        if port in own:
            continue
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "taken"
            try:
                sock.bind((LOOPBACK, port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    busy[service] = port
    return busy


def published_by(client: docker.DockerClient, project: str) -> set[int]:
    """Host ports the compose project's containers publish now."""
    ports: set[int] = set()
    for container in client.containers.list(filters={"label": f"com.docker.compose.project={project}"}):
        for bindings in (container.ports or {}).values():
            ports.update(int(binding["HostPort"]) for binding in bindings or [])
    return ports


def service_of(host_ports: HostPorts, port: int) -> str | None:
    return next((service for service, number in host_ports.model_dump().items() if number == port), None)


def taken_message(service: str | None, port: int) -> str:
    """What is taken, and the setting that moves the service elsewhere, with a port free now."""
    name = service or "<service>"
    return (
        f"host port {port}{f' ({service})' if service else ''} is already taken (by another container or "
        f"process). Free it, or publish {name} on another port: e.g. "
        f"MAILSTACK_HOST_PORTS__{name.upper()}={free_port()} make up, or the host_ports table in mailstack.toml."
    )
