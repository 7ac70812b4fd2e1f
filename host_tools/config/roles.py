"""What each role needs from a board config, read from the role's firmware.

The firmware is the source of truth: a role's parameters are the keys of its
`DEFAULTS = {...}` dict (used with `config.section(cfg, "<role>", DEFAULTS)`),
and its pin functions are the names it passes to the HAL
(`hal.output("lamp")`, `hal.uart("gnss")`, ...), read from the source with
`ast` (nothing runs, no HAL).
The parameters come from importing `roadedge.<role>.app` under CPython (its
`DEFAULTS`, or `defaults()`), falling back to the literal `DEFAULTS = {...}`
dicts in the source. A pin the role only uses when configured
(`if "legend" in pins: hal.output("legend")`) is optional; a role may also
list them in a module-level `OPTIONAL_PINS = ("name", ...)`.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field
from pathlib import Path

from host_tools import fw

from roadedge import wire  # noqa: E402

ROLES = wire.ALL_ROLES

# HAL call -> kind of pin it needs
HAL_KINDS = {"output": "out", "input": "in", "edges": "in", "pwm": "pwm", "adc": "adc", "uart": "uart",
             "spi": "spi", "i2c": "i2c"}


@dataclass
class RoleSpec:
    name: str
    defaults: dict = field(default_factory=dict)  # parameter -> default value
    pins: dict[str, str] = field(default_factory=dict)  # function -> kind (out/in/pwm/adc)
    uarts: set[str] = field(default_factory=set)
    buses: dict[str, str] = field(default_factory=dict)  # function -> "spi" | "i2c"
    optional: set[str] = field(default_factory=set)
    sources: list[Path] = field(default_factory=list)


def _literal(node: ast.AST):
    try:
        return ast.literal_eval(node)
    except ValueError:
        # e.g. const(30) or a name: unwrap const(x); otherwise unknown (None = any type)
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "const" and node.args:
            return _literal(node.args[0])
        return None


def _scan(path: Path, spec: RoleSpec) -> None:
    try:
        tree = ast.parse(path.read_text(), str(path))
    except SyntaxError:
        return  # the mpy-cross check reports it; config checks go on without this file
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
            name = node.targets[0].id
            if name == "DEFAULTS" and isinstance(node.value, ast.Dict):
                for k, v in zip(node.value.keys, node.value.values, strict=False):
                    if isinstance(k, ast.Constant) and isinstance(k.value, str):
                        spec.defaults[k.value] = _literal(v)
            elif name == "OPTIONAL_PINS":
                val = _literal(node.value)
                if isinstance(val, (tuple, list)):
                    spec.optional.update(x for x in val if isinstance(x, str))
        elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Constant) and \
                isinstance(node.left.value, str) and any(isinstance(o, ast.In) for o in node.ops):
            spec.optional.add(node.left.value)  # `"legend" in pins`: used only when configured
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            kind = HAL_KINDS.get(node.func.attr)
            arg = node.args[0]
            # only calls on something named hal (dev.hal.output, self.hal.pwm, hal.uart)
            recv = node.func.value
            recv_name = recv.attr if isinstance(recv, ast.Attribute) else getattr(recv, "id", "")
            if kind and recv_name == "hal" and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                if kind == "uart":
                    spec.uarts.add(arg.value)
                elif kind in ("spi", "i2c"):
                    spec.buses.setdefault(arg.value, kind)
                else:
                    spec.pins.setdefault(arg.value, kind)


_cache: dict[str, RoleSpec] = {}


def _imported_defaults(role: str, firmware_lib: Path) -> dict | None:
    """The role's DEFAULTS as the firmware computes them (they may be merged from several modules)."""
    import importlib

    if Path(firmware_lib).resolve() != fw.FIRMWARE_LIB.resolve():
        return _defaults_of_tree(role, Path(firmware_lib))
    try:
        mod = importlib.import_module(f"roadedge.{role}.app")
        d = getattr(mod, "DEFAULTS", None)
        if not isinstance(d, dict) and callable(getattr(mod, "defaults", None)):
            d = mod.defaults()
        return dict(d) if isinstance(d, dict) else None
    except Exception:  # a role mid-development that does not import: fall back to the source scan
        return None


def _defaults_of_tree(role: str, firmware_lib: Path) -> dict | None:
    """A role's DEFAULTS from another firmware tree (a snapshot or flashed lib), imported in a child
    interpreter without site packages, so the installed `roadedge` cannot stand in for it."""
    import json
    import os
    import subprocess
    import sys

    code = (f"import json, importlib; m = importlib.import_module('roadedge.{role}.app'); "
            "d = getattr(m, 'DEFAULTS', None); d = m.defaults() if not isinstance(d, dict) and "
            "callable(getattr(m, 'defaults', None)) else d; print(json.dumps(d))")
    try:
        r = subprocess.run([sys.executable, "-S", "-c", code], capture_output=True, text=True, timeout=30,
                           env=dict(os.environ, PYTHONPATH=str(firmware_lib)))
        d = json.loads(r.stdout) if r.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None
    return d if isinstance(d, dict) else None


def platform_spec(firmware_lib: Path = fw.FIRMWARE_LIB) -> RoleSpec:
    """The platform's own parameters: the "device" section (roadedge.core.boot DEFAULTS)."""
    key = f"{firmware_lib}:<platform>"
    if key not in _cache:
        spec = RoleSpec("device")
        boot = firmware_lib / "roadedge" / "core" / "boot.py"
        if boot.exists():
            spec.sources.append(boot)
            _scan(boot, spec)
            spec.pins.clear()
            spec.uarts.clear()
        _cache[key] = spec
    return _cache[key]


def role_spec(role: str, firmware_lib: Path = fw.FIRMWARE_LIB) -> RoleSpec:
    """The role's parameters and pin functions as its firmware declares them."""
    key = f"{firmware_lib}:{role}"
    if key in _cache:
        return _cache[key]
    spec = RoleSpec(role)
    folder = firmware_lib / "roadedge" / role
    if role != "base" and folder.is_dir():
        for p in sorted(folder.rglob("*.py")):
            spec.sources.append(p)
            _scan(p, spec)
        imported = _imported_defaults(role, firmware_lib)
        if imported is not None:
            spec.defaults = imported
    _cache[key] = spec
    return spec
