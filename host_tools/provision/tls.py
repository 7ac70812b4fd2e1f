"""A private CA and the broker's server certificate, made with the openssl CLI.

Devices get the CA in DER form (MicroPython's TLS loads DER); Mosquitto gets PEM.
RSA-2048 because every MicroPython TLS build (rp2, esp32, unix) verifies it.
"""
from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

CA_DAYS = 3650
SERVER_DAYS = 825


class TLSError(RuntimeError):
    pass


def _openssl(*args: str, cwd: Path) -> None:
    exe = shutil.which("openssl")
    if not exe:
        raise TLSError("openssl not found (apt-get install openssl)")
    r = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=120)
    if r.returncode != 0:
        raise TLSError(f"openssl {args[0]} failed: {r.stderr.strip()[-500:]}")


def ensure_ca(folder: Path, name: str = "roadedge CA") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    if not (folder / "ca.pem").exists():
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
                 "-days", str(CA_DAYS), "-subj", f"/CN={name}",
                 "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
                 cwd=folder)
        os.chmod(folder / "ca.key", 0o600)
    if not (folder / "ca.der").exists():
        _openssl("x509", "-in", "ca.pem", "-outform", "DER", "-out", "ca.der", cwd=folder)
    return folder / "ca.pem"


def issue_server(folder: Path, hosts: list[str], force: bool = False) -> tuple[Path, Path]:
    """server.pem/server.key for the broker, valid for hosts (names or IPs), signed by the CA."""
    ensure_ca(folder)
    cert, key = folder / "server.pem", folder / "server.key"
    if cert.exists() and key.exists() and not force:
        return cert, key
    sans = []
    for h in hosts:
        try:
            ipaddress.ip_address(h)
            sans.append(f"IP:{h}")
        except ValueError:
            sans.append(f"DNS:{h}")
    with tempfile.TemporaryDirectory() as td:
        ext = Path(td) / "ext.cnf"
        ext.write_text(f"subjectAltName={','.join(sans)}\nextendedKeyUsage=serverAuth\n"
                       "keyUsage=critical,digitalSignature,keyEncipherment\n")
        _openssl("req", "-new", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(Path(td) / "s.csr"),
                 "-subj", f"/CN={hosts[0]}", cwd=folder)
        _openssl("x509", "-req", "-in", str(Path(td) / "s.csr"), "-CA", "ca.pem", "-CAkey", "ca.key",
                 "-CAcreateserial", "-out", str(cert), "-days", str(SERVER_DAYS), "-extfile", str(ext), cwd=folder)
    os.chmod(key, 0o600)
    return cert, key
