"""Throwaway TLS files for a TLS-only :class:`~tiercache.testing.RedisServer`: a private CA and a
server certificate for ``127.0.0.1`` and ``localhost``.

Only :func:`make_tls_files` imports ``cryptography`` (it comes with the ``test`` extra), so
importing this module needs none of it.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from pathlib import Path

from tiercache.testing.servers.ports import LOOPBACK


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """The PEM files a TLS-only :class:`RedisServer` uses; clients trust ``ca_cert``."""

    ca_cert: Path
    """The certificate authority that signed ``server_cert``."""
    server_cert: Path
    """The server's certificate, valid for ``127.0.0.1`` and ``localhost``."""
    server_key: Path
    """The server certificate's private key (unencrypted, mode 0600)."""


def make_tls_files(directory: str | os.PathLike[str], *, valid_days: int = 30) -> TlsFiles:
    """Create a throwaway CA and a server certificate for ``127.0.0.1`` and ``localhost``.

    Keys are ECDSA P-256. The server certificate's SubjectAltName holds the IP address
    ``127.0.0.1`` and the DNS name ``localhost``, so clients verify it with hostname checks on.
    The CA's own key is not kept. Needs the ``cryptography`` package (it comes with the ``test``
    extra).

    Args:
        directory: Where to write ``ca.crt``, ``server.crt`` and ``server.key`` (created if
            missing; existing files of those names are replaced).
        valid_days: How long the certificates are valid, from one hour ago. Default 30.

    Returns:
        The paths of the three files.

    Raises:
        ImportError: ``cryptography`` is not installed.
    """
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(hours=1), now + datetime.timedelta(valid_days)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    server_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "tiercache test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    server_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(server_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.IPv4Address(LOOPBACK)), x509.DNSName("localhost")]
            ),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(server_key.public_key()), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    target = Path(directory)
    target.mkdir(parents=True, exist_ok=True)
    files = TlsFiles(target / "ca.crt", target / "server.crt", target / "server.key")
    files.ca_cert.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    files.server_cert.write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    key_pem = server_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    files.server_key.unlink(missing_ok=True)
    descriptor = os.open(files.server_key, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as key_file:
        key_file.write(key_pem)
    return files
