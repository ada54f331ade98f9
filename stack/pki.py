"""A private CA (root and intermediate) and the mail server's certificate.

Root -> intermediate -> leaf, like a public CA, so that "serves the full chain" means
something: servers present leaf + intermediate, clients trust only the root. ECDSA P-256
keys (half the handshake CPU of RSA-2048); the server also gets an RSA-2048 leaf for old
clients that cannot verify ECDSA, served beside it as a dual certificate. Re-running reuses
what is still valid and re-issues only what is missing, expiring, mis-signed or for other names.
The CA keys stay in the PKI folder; only the server's own key and chain go into images.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from stack.files import write_atomic

ROOT_VALIDITY = dt.timedelta(days=5 * 365)
INTERMEDIATE_VALIDITY = dt.timedelta(days=3 * 365)
LEAF_VALIDITY = dt.timedelta(days=365)
RENEW_BEFORE = dt.timedelta(days=30)
ORGANIZATION = "mailstack lab"

PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
KeyKind = type[ec.EllipticCurvePrivateKey] | type[rsa.RSAPrivateKey]
RSA_BITS = 2048


@dataclass(frozen=True)
class PkiFiles:
    """Where each PEM file lives inside the PKI folder."""

    directory: Path

    @property
    def root_cert(self) -> Path:
        return self.directory / "ca.pem"

    @property
    def root_key(self) -> Path:
        return self.directory / "ca.key"

    @property
    def intermediate_cert(self) -> Path:
        return self.directory / "intermediate.pem"

    @property
    def intermediate_key(self) -> Path:
        return self.directory / "intermediate.key"

    @property
    def server_cert(self) -> Path:
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        return self.directory / "server.key"

    @property
    def server_chain(self) -> Path:
        """Leaf then intermediate: what the servers present."""
        return self.directory / "fullchain.pem"

    @property
    def server_rsa_cert(self) -> Path:
        return self.directory / "server-rsa.pem"

    @property
    def server_rsa_key(self) -> Path:
        return self.directory / "server-rsa.key"

    @property
    def server_rsa_chain(self) -> Path:
        """The RSA leaf then the intermediate: what clients without ECDSA get."""
        return self.directory / "fullchain-rsa.pem"


@dataclass
class PkiReport:
    """What ensure_pki did, one line per certificate, for the build's progress output."""

    actions: list[str] = field(default_factory=list)

    def add(self, line: str) -> None:
        self.actions.append(line)


@dataclass(frozen=True)
class _Issued:
    cert: x509.Certificate
    key: PrivateKey


def _new_key(kind: KeyKind) -> PrivateKey:
    if kind is rsa.RSAPrivateKey:
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _general_name(identity: str) -> x509.GeneralName:
    """IP SAN for an address, DNS SAN otherwise (as trustme does)."""
    try:
        return x509.IPAddress(ipaddress.ip_address(identity))
    except ValueError:
        return x509.DNSName(identity)


def _build_certificate(
    *,
    subject: x509.Name,
    key: PrivateKey,
    issuer: _Issued | None,
    validity: dt.timedelta,
    ca_path_length: int | None,
    names: Iterable[str] = (),
    now: dt.datetime,
) -> x509.Certificate:
    """One builder for root, intermediate and leaf; issuer None means self-signed."""
    is_ca = ca_path_length is not None
    signing_key = issuer.key if issuer else key
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.cert.subject if issuer else subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + validity)
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=ca_path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=is_ca,
                crl_sign=is_ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if not is_ca:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        ).add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    return builder.sign(signing_key, hashes.SHA256())


def _write_private(path: Path, data: bytes) -> None:
    write_atomic(path, data, 0o600)


def _write_public(path: Path, data: bytes) -> None:
    write_atomic(path, data, 0o644)


def _save(issued: _Issued, cert_path: Path, key_path: Path) -> None:
    _write_private(
        key_path,
        issued.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    _write_public(cert_path, issued.cert.public_bytes(serialization.Encoding.PEM))


def _load(cert_path: Path, key_path: Path, kind: KeyKind) -> _Issued | None:
    """The stored pair, or None when missing, unreadable, mismatched or of another key type."""
    if not (cert_path.is_file() and key_path.is_file()):
        return None
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
    except (ValueError, TypeError):
        return None
    if not isinstance(key, kind) or key.public_key() != cert.public_key():
        return None
    os.chmod(key_path, 0o600)
    return _Issued(cert, key)


def certificate_names(cert: x509.Certificate) -> set[str]:
    """DNS and IP subject alternative names, as strings."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    return set(san.get_values_for_type(x509.DNSName)) | {
        str(ip) for ip in san.get_values_for_type(x509.IPAddress)
    }


def _stale_reason(
    stored: _Issued | None, issuer: _Issued | None, now: dt.datetime, names: set[str] | None = None
) -> str | None:
    """Why a stored certificate must be re-issued, or None to keep it."""
    if stored is None:
        return "missing"
    if stored.cert.not_valid_after_utc - now < RENEW_BEFORE:
        return f"expires {stored.cert.not_valid_after_utc:%Y-%m-%d}"
    if issuer is not None:
        try:
            stored.cert.verify_directly_issued_by(issuer.cert)
        except (ValueError, TypeError, InvalidSignature):
            return "not signed by the current CA"
    if names is not None and certificate_names(stored.cert) != names:
        return f"names changed to {', '.join(sorted(names))}"
    return None


def _ensure(
    report: PkiReport,
    label: str,
    paths: tuple[Path, Path],
    *,
    issuer: _Issued | None,
    subject: x509.Name,
    validity: dt.timedelta,
    ca_path_length: int | None,
    names: set[str] | None = None,
    kind: KeyKind = ec.EllipticCurvePrivateKey,
    force: bool,
    now: dt.datetime,
) -> _Issued:
    """Keep one stored certificate while it is still right, else issue and save a new one."""
    stored = None if force else _load(*paths, kind)
    reason = "forced" if force else _stale_reason(stored, issuer, now, names)
    if stored is not None and reason is None:
        report.add(f"{label} reused")
        return stored
    key = _new_key(kind)
    issued = _Issued(
        _build_certificate(
            subject=subject,
            key=key,
            issuer=issuer,
            validity=validity,
            ca_path_length=ca_path_length,
            names=sorted(names or ()),
            now=now,
        ),
        key,
    )
    _save(issued, *paths)
    report.add(f"{label} {'created' if issuer is None else 'issued'} ({reason})")
    return issued


def ensure_pki(
    directory: Path,
    hostname: str,
    extra_names: Iterable[str] = ("localhost", "127.0.0.1"),
    *,
    force: bool = False,
    now: dt.datetime | None = None,
) -> PkiReport:
    """Create or refresh root CA, intermediate CA and server certificate for hostname."""
    now = now or dt.datetime.now(dt.timezone.utc)
    files = PkiFiles(directory)
    directory.mkdir(parents=True, exist_ok=True)
    os.chmod(directory, 0o700)
    report = PkiReport()
    root = _ensure(
        report, "root CA", (files.root_cert, files.root_key), issuer=None,
        subject=_name(f"{ORGANIZATION} root CA"), validity=ROOT_VALIDITY, ca_path_length=1, force=force, now=now,
    )
    intermediate = _ensure(
        report, "intermediate CA", (files.intermediate_cert, files.intermediate_key), issuer=root,
        subject=_name(f"{ORGANIZATION} intermediate CA"), validity=INTERMEDIATE_VALIDITY, ca_path_length=0,
        force=force, now=now,
    )
    leaves = (
        ("", ec.EllipticCurvePrivateKey, files.server_cert, files.server_key, files.server_chain),
        (" (RSA, for old clients)", rsa.RSAPrivateKey, files.server_rsa_cert, files.server_rsa_key,
         files.server_rsa_chain),
    )
    for label, kind, cert_path, key_path, chain_path in leaves:
        _ensure(
            report, f"server certificate for {hostname}{label}", (cert_path, key_path), issuer=intermediate,
            subject=_name(hostname), validity=LEAF_VALIDITY, ca_path_length=None, names={hostname, *extra_names},
            kind=kind, force=force, now=now,
        )
        chain = cert_path.read_bytes() + files.intermediate_cert.read_bytes()
        if not chain_path.is_file() or chain_path.read_bytes() != chain:
            _write_public(chain_path, chain)
    return report
