"""PKI: the chain verifies for every name, keys are private, reuse and renewal are right."""

from __future__ import annotations

import datetime as dt
import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.verification import PolicyBuilder, Store, VerificationError

from stack.pki import PkiFiles, certificate_names, ensure_pki

HOST = "mail.example.test"
RSA_LABEL = f"server certificate for {HOST} (RSA, for old clients)"


def load(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def verify(files: PkiFiles, name: x509.GeneralName, when: dt.datetime | None = None) -> None:
    """Both served chains (ECDSA and RSA) verify against the root for name."""
    root = load(files.root_cert)[0]
    for served in (files.server_chain, files.server_rsa_chain):
        leaf, *chain = load(served)
        builder = PolicyBuilder().store(Store([root]))
        if when:
            builder = builder.time(when)
        builder.build_server_verifier(name).verify(leaf, chain)


@pytest.fixture
def files(tmp_path: Path) -> PkiFiles:
    ensure_pki(tmp_path / "pki", HOST)
    return PkiFiles(tmp_path / "pki")


@pytest.mark.parametrize(
    "name",
    [x509.DNSName(HOST), x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    ids=str,
)
def test_chain_verifies_for_each_name(files: PkiFiles, name: x509.GeneralName) -> None:
    verify(files, name)


def test_chain_does_not_verify_for_another_name(files: PkiFiles) -> None:
    with pytest.raises(VerificationError):
        verify(files, x509.DNSName("other.example.test"))


def test_served_chain_is_leaf_then_intermediate_not_root(files: PkiFiles) -> None:
    chain = load(files.server_chain)
    assert [c.subject for c in chain] == [load(files.server_cert)[0].subject, load(files.intermediate_cert)[0].subject]
    assert load(files.root_cert)[0] not in chain


def test_dual_certificate_is_ecdsa_p256_and_rsa_2048_for_the_same_names(files: PkiFiles) -> None:
    ecdsa_leaf, rsa_leaf = load(files.server_cert)[0], load(files.server_rsa_cert)[0]
    ecdsa_key, rsa_key = ecdsa_leaf.public_key(), rsa_leaf.public_key()
    assert isinstance(ecdsa_key, ec.EllipticCurvePublicKey) and ecdsa_key.curve.name == "secp256r1"
    assert isinstance(rsa_key, rsa.RSAPublicKey) and rsa_key.key_size == 2048
    assert certificate_names(ecdsa_leaf) == certificate_names(rsa_leaf)


def test_a_key_of_the_wrong_type_is_replaced(files: PkiFiles) -> None:
    files.server_rsa_key.write_bytes(files.server_key.read_bytes())  # an ECDSA key where RSA belongs
    report = ensure_pki(files.directory, HOST)
    assert report.actions[2:] == [f"server certificate for {HOST} reused", f"{RSA_LABEL} issued (missing)"]
    verify(files, x509.DNSName(HOST))


def test_keys_are_mode_0600_and_folder_0700(files: PkiFiles) -> None:
    for key in (files.root_key, files.intermediate_key, files.server_key, files.server_rsa_key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    assert stat.S_IMODE(files.directory.stat().st_mode) == 0o700


def test_rerun_reuses_everything(files: PkiFiles) -> None:
    before = files.server_chain.read_bytes(), files.root_key.read_bytes()
    report = ensure_pki(files.directory, HOST)
    assert report.actions == ["root CA reused", "intermediate CA reused", f"server certificate for {HOST} reused",
                              f"{RSA_LABEL} reused"]
    assert (files.server_chain.read_bytes(), files.root_key.read_bytes()) == before


def test_name_change_reissues_only_the_server_certificate(files: PkiFiles) -> None:
    root = files.root_cert.read_bytes()
    report = ensure_pki(files.directory, "mx.example.test")
    assert report.actions[:2] == ["root CA reused", "intermediate CA reused"]
    assert report.actions[2].startswith("server certificate for mx.example.test issued (names changed")
    assert files.root_cert.read_bytes() == root
    assert "mx.example.test" in certificate_names(load(files.server_cert)[0])


def test_near_expiry_reissues_the_server_certificate(files: PkiFiles) -> None:
    later = dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=340)
    report = ensure_pki(files.directory, HOST, now=later)
    assert report.actions[0] == "root CA reused"
    assert report.actions[2].startswith(f"server certificate for {HOST} issued (expires")
    verify(files, x509.DNSName(HOST), when=later)


def test_missing_or_corrupt_key_is_replaced(files: PkiFiles) -> None:
    files.server_key.write_text("not a key")
    report = ensure_pki(files.directory, HOST)
    assert report.actions[2] == f"server certificate for {HOST} issued (missing)"
    verify(files, x509.DNSName(HOST))


def test_new_root_reissues_the_chain_below_it(files: PkiFiles) -> None:
    files.root_key.unlink()
    report = ensure_pki(files.directory, HOST)
    assert report.actions == [
        "root CA created (missing)",
        "intermediate CA issued (not signed by the current CA)",
        f"server certificate for {HOST} issued (not signed by the current CA)",
        f"{RSA_LABEL} issued (not signed by the current CA)",
    ]
    verify(files, x509.DNSName(HOST))


def test_force_replaces_everything(files: PkiFiles) -> None:
    old_root = files.root_cert.read_bytes()
    report = ensure_pki(files.directory, HOST, force=True)
    assert all("(forced)" in action for action in report.actions)
    assert files.root_cert.read_bytes() != old_root
    verify(files, x509.DNSName(HOST))
