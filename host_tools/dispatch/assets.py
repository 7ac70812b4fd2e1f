"""Install the console's browser libraries from the npm registry into the package.

`python -m host_tools.dispatch.assets` runs `npm install` in host_tools/dispatch/web
(package.json pins the versions) and copies each library's dist files into
host_tools/dispatch/static/vendor/, from where the console serves them: the browser
never fetches anything from outside the console (works with no internet).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WEB = HERE / "web"
VENDOR = HERE / "static" / "vendor"

# library -> (files/folders under node_modules/<library>/dist to copy)
LIBRARIES = {"leaflet": ("leaflet.js", "leaflet.css", "images"),
             # the Leaflet project's own clustering plugin: dense unit markers become one counted bubble
             "leaflet.markercluster": ("leaflet.markercluster.js", "MarkerCluster.css")}


def installed() -> bool:
    return all((VENDOR / lib / f).exists() for lib, files in LIBRARIES.items() for f in files)


def install(force: bool = False, quiet: bool = False) -> None:
    if installed() and not force:
        if not quiet:
            print(f"console assets already in {VENDOR}")
        return
    npm = shutil.which("npm")
    if not npm:
        raise SystemExit("npm not found: install Node.js (apt-get install npm) and re-run")
    cmd = [npm, "install", "--no-audit", "--no-fund", "--omit=dev"]
    if not quiet:
        print("running", " ".join(cmd), "in", WEB)
    subprocess.run(cmd, cwd=WEB, check=True, stdout=subprocess.DEVNULL if quiet else None)
    for lib, files in LIBRARIES.items():
        src, dst = WEB / "node_modules" / lib / "dist", VENDOR / lib
        dst.mkdir(parents=True, exist_ok=True)
        for f in files:
            s, d = src / f, dst / f
            if s.is_dir():
                shutil.copytree(s, d, dirs_exist_ok=True)
            else:
                shutil.copy2(s, d)
    if not quiet:
        print(f"console assets installed in {VENDOR}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--force", action="store_true", help="reinstall even if present")
    a = p.parse_args(argv)
    install(force=a.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
