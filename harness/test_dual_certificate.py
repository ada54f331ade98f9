"""Dual certificate: every TLS port serves ECDSA P-256 to clients that offer it and RSA-2048
to clients that do not, and both chains verify for the host name.

ECDSA costs about half the handshake CPU of RSA, so it is the default; RSA stays for old
clients. A TLS 1.2 client offering only ECDHE-RSA suites stands in for such a client (in
TLS 1.3 the choice follows signature algorithms, which Python's ssl cannot restrict)."""

from __future__ import annotations

import ssl

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from harness.checks.tls_quality import handshake
from harness.policy import RFC8314, service_policy
from harness.target import Target

pytestmark = pytest.mark.e2e

TLS_SERVICES = sorted(RFC8314)


def tls12_context(target: Target, ciphers: str) -> ssl.SSLContext:
    context = target.new_tls_context()  # verifies chain and name against the lab's CA
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(ciphers)
    return context


async def served_leaf(target: Target, service: str, context: ssl.SSLContext) -> x509.Certificate:
    if service in target.closed:
        pytest.skip(f"{service} is closed by configuration")
    result = await handshake(target, service_policy(service, target.port(service)), context)
    assert result.verified, f"{service}: the served chain did not verify"
    return x509.load_der_x509_certificate(result.served[0])


@pytest.mark.parametrize("service", TLS_SERVICES)
async def test_modern_client_gets_ecdsa_p256(target: Target, service: str) -> None:
    key = (await served_leaf(target, service, target.tls_context)).public_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1", key


@pytest.mark.parametrize("service", TLS_SERVICES)
async def test_client_without_ecdsa_gets_rsa(target: Target, service: str) -> None:
    leaf = await served_leaf(target, service, tls12_context(target, "ECDHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES256-GCM-SHA384"))
    key = leaf.public_key()
    assert isinstance(key, rsa.RSAPublicKey) and key.key_size >= 2048, key


@pytest.mark.parametrize("service", TLS_SERVICES)
async def test_tls12_client_offering_both_gets_ecdsa(target: Target, service: str) -> None:
    leaf = await served_leaf(target, service, tls12_context(target, "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256"))
    assert isinstance(leaf.public_key(), ec.EllipticCurvePublicKey)
