"""Functional readiness: the lab is ready when it greets over TLS and accepts a login.

Never a fixed sleep, and never an open port alone: a published Docker port accepts
connections before the service behind it listens.
"""

from __future__ import annotations

import asyncio
import ssl

from harness.dialogue import read_smtp_reply
from harness.errors import ProtocolError, StepTimeout, TargetError
from harness.imap import open_imaps
from harness.stream import LineStream
from harness.target import Target

RETRY_INTERVAL_S = 0.2


async def _smtp_greets(target: Target) -> None:
    stream = await LineStream.open(
        target.host, target.port("submissions"), tls=target.tls_context, server_hostname=target.server_name, timeout=3
    )
    async with stream:
        reply = await read_smtp_reply(stream, "SMTP greeting")
        if reply.code != 220:
            raise ConnectionError(f"greeting {reply.code} {reply.text}")


async def _imap_logs_in(target: Target) -> None:
    session = await open_imaps(target, target.users[-1], timeout=3)
    await session.logout()


async def wait_until_ready(target: Target, deadline_s: float = 60.0) -> float:
    """Retry both probes until they pass; return the seconds it took."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    last_error: Exception | None = None
    while loop.time() - start < deadline_s:
        try:
            await asyncio.gather(_smtp_greets(target), _imap_logs_in(target))
            return loop.time() - start
        except ssl.SSLCertVerificationError as exc:
            raise TargetError(
                f"the certificate on port {target.port('submissions')} does not verify for "
                f"{target.server_name} against {target.ca_file}: {exc.verify_message}"
            ) from exc
        except ProtocolError as exc:
            # The server is up and said no: retrying cannot help.
            raise TargetError(
                f"{target.host} answers but refuses the target's account ({exc}); the target file "
                "does not match the running server (for the lab: run `make up` to apply the build)"
            ) from exc
        except Exception as exc:  # noqa: BLE001 - any failure means "not yet"; the last one is reported
            last_error = exc
            await asyncio.sleep(RETRY_INTERVAL_S)
    raise StepTimeout(f"readiness (last error: {last_error!r})", target.port("submissions"), deadline_s)
