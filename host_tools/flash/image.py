"""The device filesystem image a flash writes: the role's firmware, config, CA certificate.

Only what the board's role needs is shipped (`build.role_files`: the role's
manifest and its imports, the board's HAL port only). With `romfs=True` the
firmware library goes into a ROMFS image (`Image.romfs`, the bytes
`mpremote romfs build` makes) that the board executes in place from flash;
main.py, the config and the CA stay on the normal filesystem.

Paths are relative to the device root (the board's `/`, the unix port's cwd).
Everything here is deterministic: an unchanged tree and config give identical
bytes, so an unchanged re-flash copies nothing.
"""
from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from host_tools import build, fw
from host_tools.config.boards import arch_for

MANIFEST = ".roadedge-manifest.json"
CONFIG = "config.json"
VERSION = "0.1.0"
HOST_ONLY_KEYS = ("$schema", "description", "deploy", "heap_kib")


@dataclass
class Image:
    files: dict[str, bytes] = field(default_factory=dict)
    fw_version: str = ""
    arch: str | None = None
    romfs: bytes | None = None  # the ROMFS image holding lib/ (None: lib/ is in files)

    def hashes(self) -> dict[str, str]:
        return {p: sha256(b) for p, b in self.files.items()}

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.files.values()) + len(self.romfs or b"")


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def firmware_version(root: Path = fw.FIRMWARE) -> str:
    """Release + content hash of the firmware sources: changes exactly when the firmware does."""
    h = hashlib.sha256()
    for src in build.firmware_sources(root) + build.manifest_files(root):
        h.update(src.relative_to(root).as_posix().encode() + b"\0" + src.read_bytes() + b"\0")
    return f"{VERSION}+{h.hexdigest()[:10]}"


CACHE = fw.REPO / "build" / "flash"  # git-ignored


def _mpy_cross_version() -> str:
    import subprocess

    r = subprocess.run([fw.mpy_cross_binary(), "--version"], capture_output=True, text=True, timeout=30)
    return (r.stdout or r.stderr).strip()


def shipped_name(src: str) -> str:
    """The device path of a firmware source: .mpy, except what stays source (main.py)."""
    return src if src in build.KEEP_SOURCE else src[:-3] + ".mpy"


def firmware_files(board: str, source: bool = False, root: Path = fw.FIRMWARE,
                   cache: Path | None = CACHE, role: str | None = None) -> tuple[dict[str, bytes], str | None]:
    """Compiled (.mpy for the board's arch) or source firmware files: the role's (build.role_files)
    or, with role None, the whole tree.

    A compiled tree is kept in build/flash/<arch>-<content hash of sources + mpy-cross version>,
    so flashing a batch of boards (or re-flashing, or another role) compiles once."""
    only = build.role_files(role, board, root) if role is not None else None
    if source:
        srcs = [root / p for p in only] if only is not None else build.firmware_sources(root)
        return {s.relative_to(root).as_posix(): s.read_bytes() for s in srcs}, None
    files, arch = _compiled(board, root, cache)
    if only is not None:
        files = {shipped_name(p): files[shipped_name(p)] for p in only}
    return files, arch


def _compiled(board: str, root: Path, cache: Path | None) -> tuple[dict[str, bytes], str]:
    arch = arch_for(board)
    if cache is None:
        with tempfile.TemporaryDirectory(prefix="roadedge-build-") as td:
            written = build.build_tree(arch, Path(td), root)
            return {p.relative_to(td).as_posix(): p.read_bytes() for p in written}, arch
    key = hashlib.sha256(f"{firmware_version(root)}|{_mpy_cross_version()}|{arch}".encode()).hexdigest()[:16]
    done = cache / f"{arch}-{key}"
    if not done.is_dir():
        cache.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="tmp-", dir=cache) as td:
            build.build_tree(arch, Path(td) / "tree", root)
            try:
                os.rename(Path(td) / "tree", done)  # atomic: a concurrent flash builds its own and one wins
            except OSError:
                pass
        _prune(cache, keep=done)
    files = {p.relative_to(done).as_posix(): p.read_bytes() for p in sorted(done.rglob("*")) if p.is_file()}
    return files, arch


def _prune(cache: Path, keep: Path, max_trees: int = 8) -> None:
    """Keep the cache small: the newest trees only."""
    import shutil

    trees = sorted((p for p in cache.iterdir() if p.is_dir() and not p.name.startswith("tmp-")),
                   key=lambda p: p.stat().st_mtime, reverse=True)
    for old in trees[max_trees:]:
        if old != keep:
            shutil.rmtree(old, ignore_errors=True)


def config_bytes(cfg: dict) -> bytes:
    return (json.dumps(cfg, sort_keys=True, separators=(",", ":")) + "\n").encode()


def romfs_image(files: dict[str, bytes]) -> bytes:
    """The ROMFS image of these files (device paths), built by mpremote's `romfs build`
    from a staging folder. Deterministic: same files, same bytes."""
    import contextlib
    import io

    from mpremote.romfs import make_romfs

    with tempfile.TemporaryDirectory(prefix="roadedge-romfs-") as td:
        for path, data in files.items():
            dest = Path(td) / path
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(data)
        with contextlib.redirect_stdout(io.StringIO()):  # it prints the tree it builds
            return make_romfs(td, mpy_cross=False)


def build_image(cfg: dict, source: bool = False, ca_der: Path | None = None, root: Path = fw.FIRMWARE,
                romfs: bool = False) -> Image:
    """cfg: the validated, secrets-merged config (fw_version is filled in here). romfs: put the
    firmware library (lib/) into Image.romfs instead of the filesystem."""
    files, arch = firmware_files(cfg["board"], source, root, role=cfg["role"])
    rom = None
    if romfs:
        rom = romfs_image({p: b for p, b in files.items() if p.startswith("lib/")})
        files = {p: b for p, b in files.items() if not p.startswith("lib/")}
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
    return Image(files, version, arch, rom)
