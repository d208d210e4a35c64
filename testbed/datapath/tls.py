"""A local certificate authority and the mount target's certificates (openssl's command line).

efs-utils checks the mount target's certificate against ``stunnel_cafile`` and, with
``stunnel_check_cert_hostname``, that it names the file system's DNS name
(``fs-ID.efs.REGION.amazonaws.com``). The node is pointed at this CA instead of Amazon's; a
second certificate, for another file system, is the wrong one a test must see refused.
"""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def dns_name(file_system_id: str, region: str) -> str:
    return f"{file_system_id}.efs.{region}.amazonaws.com"


@dataclass(frozen=True)
class Certificate:
    cert: Path
    key: Path


@dataclass(frozen=True)
class LocalCa:
    ca: Path
    certificates: dict[str, Certificate]  # by the DNS name they are for


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, names: list[str]) -> LocalCa:
    """A CA, and a server certificate signed by it for each DNS name (kept between runs)."""
    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = directory / "ca.pem", directory / "ca.key"
    if not ca.exists():
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30",
                 "-subj", "/CN=efs-csi data path test CA", "-keyout", ca_key.name,
                 "-out", ca.name + ".tmp", "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign", cwd=directory)
        (directory / (ca.name + ".tmp")).rename(ca)
    certificates = {}
    for name in names:
        cert, key = directory / f"{name}.pem", directory / f"{name}.key"
        if not cert.exists():
            (directory / f"{name}.ext").write_text(
                f"subjectAltName=DNS:{name}\nextendedKeyUsage=serverAuth\n"
                "basicConstraints=CA:FALSE\n")
            _openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={name}",
                     "-keyout", key.name, "-out", f"{name}.csr", cwd=directory)
            _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", ca.name, "-CAkey",
                     ca_key.name, "-CAcreateserial", "-days", "30", "-extfile",
                     f"{name}.ext", "-out", cert.name + ".tmp", cwd=directory)
            (directory / (cert.name + ".tmp")).rename(cert)
        certificates[name] = Certificate(cert, key)
    return LocalCa(ca, certificates)
