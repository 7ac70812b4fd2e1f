"""The device filesystem image a flash writes: firmware, config, CA certificate.

Paths are relative to the device root (the board's `/`, the unix port's cwd).
Everything here is deterministic: an unchanged tree and config give identical
bytes, so an unchanged re-flash copies nothing.
"""
from __future__ import annotations

import hashlib
import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from host_tools import build, fw
from host_tools.config.boards import arch_for

MANIFEST = ".roadedge-manifest.json"
CONFIG = "config.json"
VERSION = "0.1.0"
HOST_ONLY_KEYS = ("$schema", "description")


@dataclass
class Image:
    files: dict[str, bytes] = field(default_factory=dict)
    fw_version: str = ""
    arch: str | None = None

    def hashes(self) -> dict[str, str]:
        return {p: sha256(b) for p, b in self.files.items()}

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.files.values())


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def firmware_version(root: Path = fw.FIRMWARE) -> str:
    """Release + content hash of the firmware sources: changes exactly when the firmware does."""
    h = hashlib.sha256()
    for src in build.firmware_sources(root):
        h.update(src.relative_to(root).as_posix().encode() + b"\0" + src.read_bytes() + b"\0")
    return f"{VERSION}+{h.hexdigest()[:10]}"


def firmware_files(board: str, source: bool = False, root: Path = fw.FIRMWARE) -> tuple[dict[str, bytes], str | None]:
    """Compiled (.mpy for the board's arch) or source firmware files."""
    if source:
        return {s.relative_to(root).as_posix(): s.read_bytes() for s in build.firmware_sources(root)}, None
    arch = arch_for(board)
    with tempfile.TemporaryDirectory(prefix="roadedge-build-") as td:
        written = build.build_tree(arch, Path(td), root)
        return {p.relative_to(td).as_posix(): p.read_bytes() for p in written}, arch


def config_bytes(cfg: dict) -> bytes:
    return (json.dumps(cfg, sort_keys=True, separators=(",", ":")) + "\n").encode()


def build_image(cfg: dict, source: bool = False, ca_der: Path | None = None, root: Path = fw.FIRMWARE) -> Image:
    """cfg: the validated, secrets-merged config (fw_version is filled in here)."""
    files, arch = firmware_files(cfg["board"], source, root)
    version = firmware_version(root)
    # host-only keys stay on the laptop: every byte of config costs RAM when the device parses it
    cfg = {k: v for k, v in cfg.items() if k not in HOST_ONLY_KEYS}
    cfg["fw_version"] = version
    files[CONFIG] = config_bytes(cfg)
    ca = (cfg.get("broker") or {}).get("ca")
    if ca:
        if ca_der is None or not ca_der.exists():
            raise FileNotFoundError(f"broker.ca: the CA certificate {ca_der} is missing: run `roadedge provision`")
        files[ca.lstrip("/")] = ca_der.read_bytes()
    return Image(files, version, arch)
