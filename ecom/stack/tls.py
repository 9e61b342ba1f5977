"""The embedded stack's private certificate authority and PostgreSQL's server certificate.

`ecom stack up` makes a CA once (`<data dir>/tls/ca.crt`, its key `ca.key` mode 600) and
signs a server certificate for the cluster with it (`server.crt` / `server.key` in the
cluster's directory, mode 600, owned by the OS user the server runs as). Its names are
127.0.0.1, ::1, localhost and the configured `ECOM_PG_HOST`, so clients can use libpq's
strictest mode, `sslmode=verify-full`, with `sslrootcert` = the CA: a man in the middle
would need the CA's key, which never leaves the data dir.

The server certificate is re-issued when it is missing, expires within 30 days, does not
name the configured host, or was not signed by the current CA (e.g. the CA was deleted).
ECDSA P-256 keys: small, fast handshakes, supported by every libpq and JDBC in use.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

CA_DAYS = 3650
SERVER_DAYS = 825
RENEW_BEFORE = dt.timedelta(days=30)
LOOPBACK_NAMES = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class CertificateAuthority:
    cert_path: Path
    key_path: Path

    def load(self) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
        cert = x509.load_pem_x509_certificate(self.cert_path.read_bytes())
        key = serialization.load_pem_private_key(self.key_path.read_bytes(), password=None)
        assert isinstance(key, ec.EllipticCurvePrivateKey)
        return cert, key


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _write_private(path: Path, data: bytes, owner: tuple[int, int] | None = None) -> None:
    """Write a file created with mode 600 (never readable by others, not even briefly)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    if owner is not None:
        os.chown(tmp, *owner)
    tmp.replace(path)


def _write_public(path: Path, data: bytes, owner: tuple[int, int] | None = None) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.chmod(0o644)
    if owner is not None:
        os.chown(tmp, *owner)
    tmp.replace(path)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ensure_ca(tls_dir: Path) -> CertificateAuthority:
    """The private CA under `tls_dir`, created on first use."""
    ca = CertificateAuthority(tls_dir / "ca.crt", tls_dir / "ca.key")
    if ca.cert_path.is_file() and ca.key_path.is_file():
        return ca
    tls_dir.mkdir(parents=True, exist_ok=True)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ecom embedded stack"),
        x509.NameAttribute(NameOID.COMMON_NAME, f"ecom private CA ({tls_dir})"[:64]),
    ])
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True,
            content_commitment=False, key_encipherment=False, data_encipherment=False,
            key_agreement=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()),
                       critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_private(ca.key_path, _key_pem(key))
    _write_public(ca.cert_path, cert.public_bytes(serialization.Encoding.PEM))
    return ca


def _general_name(host: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(host))
    except ValueError:
        return x509.DNSName(host)


def server_names(host: str) -> list[str]:
    """The names the server certificate carries: the loopback names and `host`."""
    return list(dict.fromkeys([*LOOPBACK_NAMES, host]))


def _needs_new_certificate(cert_path: Path, key_path: Path, ca_cert: x509.Certificate,
                           names: list[str]) -> bool:
    if not (cert_path.is_file() and key_path.is_file()):
        return True
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        ca_cert.public_key().verify(  # type: ignore[union-attr, call-arg]
            cert.signature, cert.tbs_certificate_bytes,
            ec.ECDSA(cert.signature_hash_algorithm),  # type: ignore[arg-type]
        )
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, InvalidSignature, x509.ExtensionNotFound, TypeError):
        return True
    present = {str(n.value) for n in san}
    wanted = {str(_general_name(n).value) for n in names}
    return not wanted <= present or cert.not_valid_after_utc - _now() < RENEW_BEFORE


def ensure_server_certificate(ca: CertificateAuthority, cert_path: Path, key_path: Path,
                              host: str, owner: tuple[int, int] | None = None) -> bool:
    """Issue the server certificate if needed; True when a new one was written."""
    ca_cert, ca_key = ca.load()
    names = server_names(host)
    if not _needs_new_certificate(cert_path, key_path, ca_cert, names):
        return False
    key = ec.generate_private_key(ec.SECP256R1())
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
        .issuer_name(ca_cert.subject).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=SERVER_DAYS))
        .add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(
            digital_signature=True, key_encipherment=False, key_cert_sign=False,
            crl_sign=False, content_commitment=False, data_encipherment=False,
            key_agreement=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                       critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    _write_private(key_path, _key_pem(key), owner)
    _write_public(cert_path, cert.public_bytes(serialization.Encoding.PEM), owner)
    return True
