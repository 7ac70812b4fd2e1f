"""What a board really gets: per-role images, ROMFS, the heap fit check.

- role_files follows each role's imports (lazy ones too) for the board's HAL port only: no other
  role, no other port, no test-only module; a module a role starts importing is shipped without
  touching the manifest; an import of a missing module is an error naming it;
- every role, flashed to dir: as .mpy files and as a ROMFS image, holds exactly its modules, boots
  under `micropython` through `roadedge sim boot` (the ROMFS one mounted with vfs.VfsRom, as a
  board's startup would), comes online and passes its self-test; a re-flash copies nothing;
- a role over a board's heap budget is refused by validate and flash, naming the ways out, and
  --force turns the refusal into a warning."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from host_tools import build, fw
from host_tools.flash import image as img
from tooling_support import roadedge

ROLES = ("base", "sign", "beacon", "tracker")
HEAP = "320K"  # role devices come online from 172-184K (.mpy); the ROMFS image buffer is on this heap too


def lib_modules(files: list[str]) -> set[str]:
    return {f for f in files if f.startswith("lib/")}


@pytest.mark.parametrize("board", ["pico_w", "esp32", "sim"])
def test_role_files_are_the_role_and_the_boards_port_only(board):
    port = build.hal_ports()[board]
    for role in ROLES:
        files = build.role_files(role, board)
        assert "main.py" in files and "lib/roadedge/core/app.py" in files
        assert "lib/roadedge/mqtt/packet_server.py" not in files  # the tests' fake broker
        assert f"lib/roadedge/hal/{port}.py" in files
        for other in {"rp2", "esp32", "sim"} - {port}:
            assert f"lib/roadedge/hal/{other}.py" not in files
        assert ("lib/roadedge/hal/sim_io.py" in files) == (board == "sim")
        for other in set(ROLES) - {role, "base"}:
            # a sign may read a visibility meter (beacon/meter.py); never another role's app
            assert f"lib/roadedge/{other}/app.py" not in files
        if role != "base":
            assert f"lib/roadedge/{role}/app.py" in files
        # every shipped module is the entry or imported by a shipped one: nothing rides along
        named = {"roadedge.core.app", f"roadedge.{role}.app", f"roadedge.hal.{port}"}
        for f in files:
            named |= {m for m, _must in build.imported_names(fw.FIRMWARE / f)}
        for f in lib_modules(files):
            mod = f[4:-3].replace("/", ".").removesuffix(".__init__")
            assert mod in named or any(n.startswith(mod + ".") for n in named), (role, board, f)
        assert not any(f.endswith(build.MANIFEST_NAME) for f in files)  # host-side declarations


def test_a_new_module_ships_without_editing_the_manifest(tmp_path):
    root = tmp_path / "firmware"
    shutil.copytree(fw.FIRMWARE, root, ignore=shutil.ignore_patterns("__pycache__"))
    sign = root / "lib" / "roadedge" / "sign"
    (sign / "model.py").write_text("def limit(vis_m):\n    return 20 if vis_m < 50 else 40\n")
    (sign / "app.py").write_text((sign / "app.py").read_text() + "\n\ndef _model():\n"
                                 "    from roadedge.sign import model\n\n    return model\n")
    assert "lib/roadedge/sign/model.py" in build.role_files("sign", "pico_w", root)
    assert "lib/roadedge/sign/model.py" not in build.role_files("tracker", "pico_w", root)
    (sign / "app.py").write_text((sign / "app.py").read_text() + "\nimport roadedge.sign.gone\n")
    with pytest.raises(build.ManifestError, match="roadedge.sign.gone"):
        build.role_files("sign", "pico_w", root)
    with pytest.raises(build.ManifestError, match="no manifest"):
        build.role_files("lighthouse", "pico_w", root)


# A micropython probe: mount a ROMFS image with vfs.VfsRom and list every file in it.
LIST_ROMFS = """import os, sys, vfs
f = open(sys.argv[1], 'rb'); vfs.mount(vfs.VfsRom(f.read()), '/rom'); f.close()
def walk(d):
    for name, kind, *_ in os.ilistdir(d):
        p = d + '/' + name
        if kind == 0x4000:
            walk(p)
        else:
            print(p[len('/rom/'):])
walk('/rom')
"""


def _sim_configs(tmp_path: Path, mosquitto_url: str, hw_addr: str) -> dict[str, Path]:
    out = {}
    for role in ROLES:
        src = (fw.REPO / "board_configs" / f"sim-{role}.json")
        c = json.loads(src.read_text())
        c["sim"] = {"hw": hw_addr}
        c["device"] = dict(c.get("device") or {}, tele_s=2)
        if role == "sign":
            # nothing answers a visibility meter under `sim boot` (the world engine plays one): a sign
            # without one (it is optional) so its self-test can pass; its image still has the driver
            c["uarts"].pop("vis_meter")
        out[role] = tmp_path / f"sim-{role}.json"
        out[role].write_text(json.dumps(c))
    return out


@pytest.mark.parametrize("deploy", ["mpy", "romfs"])
def test_each_role_image_holds_its_modules_boots_online_and_passes_selftest(
        deploy, secure_broker, provisioned, collector_factory, firmware_snapshot, tmp_path):
    from host_tools.config.secrets import Secrets
    from host_tools.provision.core import provision

    cfgs = _sim_configs(tmp_path, secure_broker.url, "127.0.0.1:1")
    ids = {role: json.loads(p.read_text())["id"] for role, p in cfgs.items()}
    provision(Secrets.load(provisioned.secrets_dir), list(ids.values()), out=provisioned.out, tls_hosts=None)
    secure_broker.restart()  # Mosquitto reads the accounts at start-up
    creds = ["--broker", secure_broker.url, "--secrets", str(provisioned.secrets_dir)]
    folders = {}
    for role, cfgf in cfgs.items():
        folder = folders[role] = tmp_path / "dev" / role
        args = ["flash", "--board", str(cfgf), "--port", f"dir:{folder}", "--deploy", deploy,
                "--firmware", str(firmware_snapshot), *creds]
        r = roadedge(*args)
        assert r.returncode == 0, r.stdout + r.stderr
        want = {img.shipped_name(p) for p in build.role_files(role, "sim", firmware_snapshot)}
        shipped = set(json.loads((folder / ".roadedge-manifest.json").read_text())["files"]) - {"config.json"}
        if deploy == "romfs":
            probe = tmp_path / "list_romfs.py"
            probe.write_text(LIST_ROMFS)
            listed = fw.run("micropython", probe, [str(folder / "romfs.img")], timeout=60)
            assert listed.returncode == 0, listed.stdout + listed.stderr
            in_rom = set(listed.stdout.split())
            assert in_rom == lib_modules(sorted(want)), (role, in_rom ^ lib_modules(sorted(want)))
            assert shipped == want - in_rom == {"main.py"} and not (folder / "lib").exists()
        else:
            assert shipped == want, (role, shipped ^ want)
        again = roadedge(*args)
        assert again.returncode == 0 and " 0 copied" in again.stdout, again.stdout

    ctl = collector_factory(secure_broker.port, ["re/sys/#"], username="controller",
                            password=provisioned.password("controller"))
    ctl.c.publish("re/sys/time", json.dumps({"t": int(time.time() * 1000)}), 1, retain=True).wait_for_publish(10)
    col = collector_factory(secure_broker.port, ["re/+/status"], username="technician",
                            password=provisioned.password("technician"))
    # sim boot's status view watches as a read-only ingest account, not as the technician whose id `roadedge
    # selftest` needs: two sessions of one account take the bound client id from each other, and the view's
    # reconnects made a selftest wait out its 10-20 s timeouts before a retry got through
    boot = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "sim", "boot", "--heap", HEAP, "--for", "300",
                             "--secrets", str(provisioned.secrets_dir), "--user", "ingest-1",
                             "--password", provisioned.password("ingest-1"), *map(str, folders.values())],
                            cwd=fw.REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**fw.os.environ, "COLUMNS": "200"})
    try:
        online: set[str] = set()
        deadline = time.monotonic() + 90
        while online != set(ids.values()):
            t, p, _r, _q = col.wait_for(lambda t, p, *_: p == b"online", max(0.1, deadline - time.monotonic()))
            online.add(t.split("/")[1])
        # off the broker before `roadedge selftest` connects as the technician: client ids are bound to
        # accounts, so two technician sessions take the id from each other
        col.close()
        for role, dev in ids.items():
            # a check on a peripheral (the sign's visibility meter) passes once it has answered a poll
            deadline = time.monotonic() + 60
            while True:
                r = roadedge("selftest", dev, "--json", *creds)
                # no JSON: the command was refused or unanswered (said on stderr)
                result = json.loads(r.stdout) if r.stdout.strip() else {"pass": False, "checks": {}}
                failing = {k: v for k, v in result["checks"].items() if not v[0]} or r.stderr
                if result["pass"] or time.monotonic() > deadline:
                    break
            assert result["pass"] is True and r.returncode == 0, (role, failing)
            assert result["checks"]["mqtt"][0] is True
    finally:
        boot.send_signal(signal.SIGINT)
        try:
            out, _ = boot.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            boot.kill()
            out, _ = boot.communicate()
    assert boot.returncode == 0, out
    for folder in folders.values():
        console = (folder / "console.log").read_text(errors="replace")
        assert "Traceback" not in console and "ImportError" not in console, console[-2000:]


def test_a_role_over_the_boards_heap_is_refused_naming_the_way_out(provisioned, firmware_snapshot, tmp_path):
    cfg = json.loads((fw.REPO / "board_configs" / "esp32-tracker.json").read_text())
    cfg["deploy"] = "mpy"
    over = tmp_path / "esp32-tracker.json"
    over.write_text(json.dumps(cfg))
    r = roadedge("validate", str(over))
    text = " ".join((r.stdout + r.stderr).split())
    assert r.returncode == 1
    assert "role tracker as .mpy files" in text and "will not boot" in text
    for way in ("ROMFS", "PSRAM", "fewer features"):
        assert way in text, text
    r = roadedge("validate", "--force", str(over))
    assert r.returncode == 0 and "warning: deploy" in " ".join(r.stderr.split()), r.stdout + r.stderr

    # as ROMFS the same tracker fits the same board
    cfg["deploy"] = "romfs"
    over.write_text(json.dumps(cfg))
    r = roadedge("validate", str(over))
    assert r.returncode == 0, r.stdout + r.stderr

    # flash refuses before it writes anything; --force flashes and warns
    from host_tools.flash.flasher import FlashOptions, flash

    cfg["deploy"] = "mpy"
    cfg["id"] = "tool-dev-a"
    cfg["broker"] = dict(cfg["broker"], user="tool-dev-a", url="mqtt://127.0.0.1:1883")
    over.write_text(json.dumps(cfg))
    folder = tmp_path / "board"
    opts = FlashOptions(secrets=str(provisioned.secrets_dir), firmware=str(firmware_snapshot), wait_online=False)
    res = flash(str(over), f"dir:{folder}", opts)
    said = " ".join(str(p) for p in res.problems) + res.reason
    assert not res.ok and "will not boot" in said and not (folder / "main.py").exists(), said
    opts.force = True
    res = flash(str(over), f"dir:{folder}", opts)
    assert res.ok, res.reason
    assert any(p.warning and "will not boot" in p.message for p in res.problems)
    assert (folder / "lib" / "roadedge" / "tracker" / "app.mpy").exists()


def test_fit_figures_are_the_bench_figures_times_the_32_bit_factor():
    from host_tools.config import fit

    n = fit.needs_64()
    for role in ROLES:
        assert fit.need_k(role, "mpy", tls=False) == -(-n["mpy"][role] * 7 // 10)
        assert fit.need_k(role, "mpy", tls=True) == fit.need_k(role, "mpy", tls=False) + fit.TLS_EXTRA_K
        assert fit.need_k(role, "romfs", tls=False) <= fit.need_k(role, "mpy", tls=False)
    # the sim board has no budget: its heap is whatever the test or `sim boot --heap` gives it
    assert fit.budget_k({"board": "sim"}) is None and fit.budget_k({"board": "esp32", "heap_kib": 2048}) == 2048


def test_flash_over_serial_deploys_romfs_with_mpremote_and_hash_skips_it(
        secure_broker, provisioned, hw_server, pty_repl_romfs, firmware_snapshot, tmp_path):
    """A REPL with a ROMFS partition: `auto` deploys the role's image with mpremote's `romfs deploy`,
    keeps only main.py and the config on the filesystem, verifies the partition, skips it when
    unchanged, and the device runs from it (online on the broker)."""
    import re

    from tooling_support import base_config

    folder, port = pty_repl_romfs
    dev = "tool-dev-b"
    cfgf = base_config(tmp_path / "b.json", dev, secure_broker.url, hw_server.addr)
    args = ["flash", "--board", str(cfgf), "--port", port, "--secrets", str(provisioned.secrets_dir),
            "--firmware", str(firmware_snapshot)]
    r = roadedge(*args, "--no-wait")
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"deploy\s+romfs", r.stdout), r.stdout
    files = set(json.loads((folder / ".roadedge-manifest.json").read_text())["files"])
    assert files == {"main.py", "config.json"} and not (folder / "lib").exists()
    r = roadedge(*args, "--timeout", "60")  # nothing to copy or deploy; start it; watch it come online
    assert r.returncode == 0, r.stdout + r.stderr
    assert " 0 copied" in r.stdout and re.search(r"online\s+yes", r.stdout), r.stdout


def test_switching_between_romfs_and_mpy_leaves_nothing_stale(provisioned, firmware_snapshot, tmp_path):
    """.mpy files over a ROMFS flash empty the partition (/rom/lib would shadow /lib); back to ROMFS
    the .mpy files go and the image is deployed again; each unchanged re-flash writes nothing."""
    from host_tools.flash.flasher import FlashOptions, flash
    from tooling_support import base_config

    cfgf = base_config(tmp_path / "a.json", "tool-dev-a", "mqtt://127.0.0.1:1883", "127.0.0.1:1")
    folder = tmp_path / "dev"

    def go(deploy: str):
        res = flash(str(cfgf), f"dir:{folder}", FlashOptions(secrets=str(provisioned.secrets_dir), deploy=deploy,
                                                             firmware=str(firmware_snapshot), wait_online=False))
        assert res.ok and res.deploy == deploy, res.reason
        return res, json.loads((folder / ".roadedge-manifest.json").read_text())

    res, m = go("romfs")
    full = (folder / "romfs.img").read_bytes()
    assert "romfs" in m and not (folder / "lib").exists()
    res, m = go("mpy")
    assert "romfs" not in m and (folder / "lib" / "roadedge" / "core" / "app.mpy").exists()
    assert len((folder / "romfs.img").read_bytes()) < 16 < len(full)  # an empty, valid image
    res, m = go("mpy")
    assert res.copied == 0 and res.removed == 0
    res, m = go("romfs")
    assert (folder / "romfs.img").read_bytes() == full and not list((folder / "lib").rglob("*.mpy"))
    res, m = go("romfs")
    assert res.copied == 0 and res.bytes_copied == 0
