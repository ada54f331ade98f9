"""TLS quality per port: versions, forward secrecy, certificate for the name, full chain served.

The version probe's client must itself allow TLS 1.0/1.1 (OpenSSL 3 refuses them at its
default security level); otherwise a "refused" would prove nothing, and the check says so.
"""

from __future__ import annotations

import asyncio
import ssl
import time
import warnings
from dataclasses import dataclass

from cryptography import x509
from cryptography.x509 import DNSName
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from harness.checks.base import Check, Outcome, failed, passed, skipped
from harness.errors import HarnessError
from harness.policy import ServicePolicy
from harness.sessions import open_session
from harness.target import Target

VERSIONS = {
    "TLSv1": ssl.TLSVersion.TLSv1,
    "TLSv1.1": ssl.TLSVersion.TLSv1_1,
    "TLSv1.2": ssl.TLSVersion.TLSv1_2,
    "TLSv1.3": ssl.TLSVersion.TLSv1_3,
}
REQUIRED = ("TLSv1.2", "TLSv1.3")
FORBIDDEN = ("TLSv1", "TLSv1.1")
# Every TLS 1.2 suite without an ephemeral key exchange that OpenSSL can offer.
NON_FS_CIPHERS = "kRSA:kECDH:kDH:kPSK:aNULL:eNULL:@SECLEVEL=0"
HANDSHAKE_ERRORS = (ssl.SSLError, ConnectionError, EOFError, HarnessError, OSError)


def probe_context(version: ssl.TLSVersion, ciphers: str = "ALL:@SECLEVEL=0") -> ssl.SSLContext:
    """An unverifying client pinned to one version that allows old versions and suites."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with warnings.catch_warnings():  # TLS 1.0/1.1 are deprecated: offering them is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = version
        context.maximum_version = version
    context.set_ciphers(ciphers)
    return context


_CAN_OFFER: dict[ssl.TLSVersion, bool] = {}


async def client_can_offer(version: ssl.TLSVersion) -> bool:
    """Whether this Python/OpenSSL really completes a handshake at version (tried on loopback).

    The local server uses an anonymous suite, so no certificate is needed for the test.
    """
    if version not in _CAN_OFFER:
        server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                server_context.minimum_version = server_context.maximum_version = version
            server_context.set_ciphers("aNULL:@SECLEVEL=0")
        except (ssl.SSLError, ValueError):
            _CAN_OFFER[version] = False
            return False

        async def greet(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writer.write(b"ok\n")
            await writer.drain()
            writer.close()

        server = await asyncio.start_server(greet, "127.0.0.1", 0, ssl=server_context)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", port, ssl=probe_context(version)), 5
            )
            _CAN_OFFER[version] = await asyncio.wait_for(reader.readline(), 5) == b"ok\n"
            writer.close()
        except (ssl.SSLError, OSError, asyncio.TimeoutError):
            _CAN_OFFER[version] = False
        finally:
            server.close()
    return _CAN_OFFER[version]


@dataclass(frozen=True)
class Handshake:
    version: str
    cipher: str
    served: list[bytes]  # DER, as the server sent them
    verified: list[bytes]  # DER, leaf to trust anchor (empty when unverified)
    not_after: float | None
    dialogue: str


def _chain(ssl_object: ssl.SSLObject, which: str) -> list[bytes]:
    getter = getattr(ssl_object, which, None) or getattr(ssl_object._sslobj, which, None)  # type: ignore[attr-defined]
    if getter is None:
        return []
    return [cert.public_bytes(ssl._ssl.ENCODING_DER) for cert in (getter() or [])]  # type: ignore[attr-defined]


async def handshake(target: Target, service: ServicePolicy, context: ssl.SSLContext) -> Handshake:
    """Reach TLS on this port (directly or by STARTTLS) with context; raise if it fails."""
    session = await open_session(target, service, context=context)
    try:
        ssl_object = session.stream._writer.get_extra_info("ssl_object")
        cipher = ssl_object.cipher()
        peer = ssl_object.getpeercert() if context.verify_mode != ssl.CERT_NONE else {}
        return Handshake(
            version=ssl_object.version(),
            cipher=cipher[0] if cipher else "",
            served=_chain(ssl_object, "get_unverified_chain"),
            verified=_chain(ssl_object, "get_verified_chain") if peer else [],
            not_after=ssl.cert_time_to_seconds(peer["notAfter"]) if peer else None,
            dialogue=str(session.stream.transcript),
        )
    finally:
        await session.close()


async def versions(target: Target, service: ServicePolicy) -> Outcome:
    unprobeable = [name for name in FORBIDDEN if not await client_can_offer(VERSIONS[name])]
    if unprobeable:
        return skipped(f"this client's OpenSSL cannot offer {', '.join(unprobeable)}; refusal would prove nothing")
    accepted: dict[str, bool] = {}
    notes: list[str] = []
    for name, version in VERSIONS.items():
        try:
            await handshake(target, service, probe_context(version))
            accepted[name] = True
        except HANDSHAKE_ERRORS as exc:
            accepted[name] = False
            notes.append(f"{name}: {type(exc).__name__}: {exc}")
    summary = ", ".join(f"{n} {'accepted' if a else 'refused'}" for n, a in accepted.items())
    bad = [n for n in FORBIDDEN if accepted[n]] + [n for n in REQUIRED if not accepted[n]]
    if bad:
        return failed(f"{summary} (wrong: {', '.join(bad)})", "\n".join(notes))
    return passed(summary)


async def forward_secrecy(target: Target, service: ServicePolicy) -> Outcome:
    try:
        weak = await handshake(target, service, probe_context(ssl.TLSVersion.TLSv1_2, NON_FS_CIPHERS))
        return failed(f"accepted {weak.cipher} without forward secrecy", weak.dialogue)
    except HANDSHAKE_ERRORS:
        pass
    chosen = await handshake(target, service, probe_context(ssl.TLSVersion.TLSv1_2))
    if not chosen.cipher.startswith(("ECDHE-", "DHE-")):
        return failed(f"TLS 1.2 with every suite offered, the server chose {chosen.cipher}", chosen.dialogue)
    return passed(f"no suite without forward secrecy accepted; TLS 1.2 choice: {chosen.cipher}")


def _verify_leaf(target: Target, served: list[bytes]) -> tuple[int, str | None]:
    """Days left on the leaf and why it does not verify (None when it does).

    Intermediates come from what the server sent and from the target's intermediates file
    (certificates a client may already hold), so a missing chain is full-chain's finding,
    not this one's.
    """
    roots = x509.load_pem_x509_certificates(target.ca_file.read_bytes())
    known = x509.load_pem_x509_certificates(target.intermediates.read_bytes()) if target.intermediates else []
    leaf, *sent = [x509.load_der_x509_certificate(der) for der in served]
    days = int((leaf.not_valid_after_utc.timestamp() - time.time()) // 86400)
    verifier = PolicyBuilder().store(Store(roots)).build_server_verifier(DNSName(target.server_name))
    try:
        verifier.verify(leaf, sent + known)
    except VerificationError as exc:
        return days, str(exc)
    return days, None


async def certificate(target: Target, service: ServicePolicy) -> Outcome:
    result = await handshake(target, service, probe_context(ssl.TLSVersion.TLSv1_3))
    if not result.served:
        return skipped("this Python cannot read the served certificates")
    days, problem = _verify_leaf(target, result.served)
    if days < 0:
        return failed(f"certificate expired {-days} days ago")
    if problem:
        return failed(f"certificate does not verify for {target.server_name}: {problem}")
    return passed(f"verifies for {target.server_name} against {target.ca_file.name}; {days} days left")


async def full_chain(target: Target, service: ServicePolicy) -> Outcome:
    try:
        result = await handshake(target, service, target.roots_only_context)
    except ssl.SSLCertVerificationError as exc:
        return failed(f"the served chain does not verify ({exc.verify_message}): intermediate not served?")
    if not result.served or not result.verified:
        return skipped("this Python cannot read the served chain")
    missing = [der for der in result.verified[:-1] if der not in result.served]
    if missing:
        return failed(f"server sends {len(result.served)} certificate(s); {len(missing)} needed below the root are missing")
    return passed(f"server sends {len(result.served)} certificate(s): the full chain up to the root")


def _speaks_tls(service: ServicePolicy) -> bool:
    return service.speaks_tls


CHECKS = [
    Check("tls-versions", "TLS 1.2 and 1.3 accepted, 1.0 and 1.1 refused", _speaks_tls, versions),
    Check("forward-secrecy", "no cipher suite without forward secrecy", _speaks_tls, forward_secrecy),
    Check("certificate", "chain verifies for the host name; days left", _speaks_tls, certificate),
    Check("full-chain", "leaf and intermediates served", _speaks_tls, full_chain),
]
