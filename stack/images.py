"""Bake rendered configuration and the server certificate into the two images (docker SDK)."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable
from pathlib import Path

import docker
from docker.errors import APIError, DockerException, ImageNotFound

from stack.errors import BuildFailed, EngineUnavailable
from stack.layout import BuildLayout
from stack.render import image_name
from stack.settings import Settings

REPO_ROOT = Path(__file__).resolve().parent.parent

ENGINE_HINT = (
    "Start a Docker engine and run the command again: `sudo systemctl start docker` on a "
    "machine with Docker installed, or `sudo bash .ci/engine.sh` to install and start one "
    "(Debian). Set DOCKER_HOST if your engine listens elsewhere."
)


def connect() -> docker.DockerClient:
    """A client whose engine has answered a ping, or EngineUnavailable naming the fix."""
    where = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    try:
        client = docker.from_env(timeout=300)
        client.ping()
    except DockerException as exc:
        raise EngineUnavailable(f"no Docker engine answers at {where} ({exc}).\n{ENGINE_HINT}") from exc
    return client


def require_base_image(client: docker.DockerClient, base_image: str) -> None:
    """Fail early, with the fix, when the base image is neither local nor pullable."""
    try:
        client.images.get(base_image)
        return
    except docker.errors.ImageNotFound:
        pass
    try:
        client.images.pull(base_image)
    except DockerException as exc:
        raise BuildFailed(
            f"base image {base_image} is not available locally and could not be pulled ({exc}).\n"
            "Without a registry, `sudo bash .ci/engine.sh` builds it with debootstrap."
        ) from exc


def build_image(
    client: docker.DockerClient,
    settings: Settings,
    layout: BuildLayout,
    service: str,
    on_line: Callable[[str], None] = lambda _line: None,
    no_cache: bool = False,
) -> tuple[str, bool]:
    """Build Dockerfile.<service> from its rendered context; return the image id, and whether
    it changed (False when Docker's cache gave back the image that was already there)."""
    tag = image_name(settings, service)
    previous = _image_id(client, tag)
    tail: deque[str] = deque(maxlen=25)
    image_id = ""
    try:
        stream = client.api.build(
            path=str(layout.context(service)),
            dockerfile=str(REPO_ROOT / f"Dockerfile.{service}"),
            tag=tag,
            buildargs={"BASE_IMAGE": settings.base_image},
            rm=True,
            forcerm=True,
            pull=False,
            nocache=no_cache,
            decode=True,
            labels={"org.opencontainers.image.title": f"mailstack {service}"},
        )
        for chunk in stream:
            if "error" in chunk:
                tail.append(chunk["error"].rstrip())
                raise BuildFailed(f"building {tag} failed:\n" + "\n".join(tail))
            line = chunk.get("stream", "").rstrip()
            if line:
                tail.append(line)
                on_line(line)
            if "aux" in chunk and "ID" in chunk["aux"]:
                image_id = chunk["aux"]["ID"]
    except DockerException as exc:
        raise BuildFailed(f"building {tag} failed: {exc}\n" + "\n".join(tail)) from exc
    image_id = image_id or client.images.get(tag).id
    if previous and previous != image_id:
        _remove_quietly(client, previous)
    return image_id, image_id != previous


def _image_id(client: docker.DockerClient, tag: str) -> str | None:
    try:
        return client.images.get(tag).id
    except docker.errors.ImageNotFound:
        return None


def _remove_quietly(client: docker.DockerClient, image_id: str) -> None:
    """Drop the image a rebuild replaced: it holds an old server key. One still used by a
    container stays (the engine refuses), and goes with a later rebuild or `make clean`."""
    try:
        client.images.remove(image_id)
    except DockerException:
        pass


HARNESS_SUFFIX = "-test"  # `make test` builds its lab as <prefix>-test/postfix, <prefix>-test/dovecot


def remove_images(settings: Settings) -> tuple[list[str], list[str]]:
    """Delete this lab's images and those `make test` built for it (they hold a server's
    private key): (removed, kept).

    Exactly <prefix>/postfix, <prefix>/dovecot and the same under <prefix>-test, never forced:
    an image another container still uses is kept and named. (A lab of its own named
    <prefix>-test would lose its images too: pick prefixes that are not one another's.)
    """
    client = connect()
    removed, kept = [], []
    harness_lab = settings.model_copy(update={"image_prefix": settings.image_prefix + HARNESS_SUFFIX})
    for tag in (image_name(lab, service) for lab in (settings, harness_lab) for service in ("postfix", "dovecot")):
        try:
            client.images.remove(tag)
            removed.append(tag)
        except ImageNotFound:
            continue
        except APIError as exc:  # e.g. in use by a container of another project
            kept.append(f"{tag} ({exc.explanation or exc})")
    return removed, kept
