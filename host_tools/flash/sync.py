"""Copy an image to a target, only the files whose hash differs, and verify.

The device keeps a manifest (/.roadedge-manifest.json: path -> SHA-256) of
what the last flash wrote. A file is copied when its hash differs from the
manifest, or when the device's copy is missing or has the wrong size (someone
deleted or edited it). Copied files are re-hashed on the device; the manifest
is written last, so an interrupted flash is simply redone next time.
A ROMFS image is hash-skipped the same way: deployed when the manifest's
"romfs" hash differs or the partition's first bytes do not hash to it, and
verified after the deploy. A flash of .mpy files over an earlier ROMFS one
deploys an empty ROMFS: /rom/lib comes before /lib on sys.path, so stale
modules there would shadow the new files.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field

from host_tools.flash.image import MANIFEST, Image, romfs_image, sha256


class VerifyError(RuntimeError):
    pass


@dataclass
class Plan:
    copy: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)
    bytes_to_copy: int = 0
    romfs: bytes | None = None  # an image to deploy (None: the partition is left as it is)


@dataclass
class SyncResult:
    copied: list[str]
    unchanged: list[str]
    removed: list[str]
    bytes_copied: int
    romfs_deployed: bool = False


def _device_manifest(target) -> dict:
    raw = target.read(MANIFEST)
    if not raw:
        return {}
    try:
        data = json.loads(raw)
        return data if isinstance(data, dict) else {}
    except ValueError:
        return {}  # unreadable manifest: treat the device as blank


def read_manifest(target) -> dict[str, str]:
    files = _device_manifest(target).get("files", {})
    if not isinstance(files, dict):
        return {}
    return {p: h for p, h in files.items() if isinstance(p, str) and isinstance(h, str)}


def plan(image: Image, target) -> Plan:
    want = image.hashes()
    have = read_manifest(target)
    had_romfs = _device_manifest(target).get("romfs")
    sizes = target.sizes(sorted(want))
    p = Plan()
    if image.romfs is not None:
        h = sha256(image.romfs)
        if had_romfs != h or target.romfs_hash(len(image.romfs)) != h:
            p.romfs = image.romfs
            p.bytes_to_copy += len(image.romfs)
    elif had_romfs:
        p.romfs = romfs_image({})
    for path in sorted(want):
        if have.get(path) == want[path] and sizes.get(path) == len(image.files[path]):
            p.unchanged.append(path)
        else:
            p.copy.append(path)
            p.bytes_to_copy += len(image.files[path])
    # files an earlier flash wrote that this image no longer has (a stale .mpy could shadow a module)
    p.remove = sorted(set(have) - set(want))
    return p


def apply(image: Image, target, p: Plan, on_file: Callable[[str], None] | None = None,
          on_bytes: Callable[[int], None] | None = None) -> SyncResult:
    want = image.hashes()
    if p.romfs is not None:
        if on_file:
            on_file("ROMFS image")
        target.romfs_deploy(p.romfs)
        if target.romfs_hash(len(p.romfs)) != sha256(p.romfs):
            raise VerifyError("verification failed for the ROMFS image on the device")
        if on_bytes:
            on_bytes(len(p.romfs))
    for path in p.copy:
        if on_file:
            on_file(path)
        target.write(path, image.files[path], on_bytes)
    for path in p.remove:
        target.remove(path)
    if p.copy:
        got = target.hashes(p.copy)
        bad = [x for x in p.copy if got.get(x) != want[x]]
        if bad:
            raise VerifyError(f"verification failed for {len(bad)} file(s) on the device: {', '.join(bad[:5])}")
    if p.copy or p.remove or p.romfs is not None or target.read(MANIFEST) is None:
        manifest: dict = {"fw_version": image.fw_version, "files": want}
        if image.romfs is not None:
            manifest["romfs"] = sha256(image.romfs)
        target.write(MANIFEST, json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode())
    return SyncResult(p.copy, p.unchanged, p.remove, p.bytes_to_copy, p.romfs is not None)
