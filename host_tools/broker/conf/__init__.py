"""The shipped Mosquitto configuration (roadedge.conf) and its rendering."""
from __future__ import annotations

import os
from pathlib import Path
from string import Template

from host_tools.provision import dynsec

TEMPLATE = Path(__file__).resolve().parent / "roadedge.conf"


def render(dynsec_file: Path, cafile: Path, certfile: Path, keyfile: Path,
           data_dir: Path, plain_port: int = 1883, tls_port: int = 8883, as_root: bool | None = None,
           plugin: Path | None = None) -> str:
    if as_root is None:
        as_root = os.geteuid() == 0
    return Template(TEMPLATE.read_text()).substitute(
        user_line="user root" if as_root else "# user root",
        plugin=plugin or dynsec.plugin_path(), dynsec_file=dynsec_file,
        cafile=cafile, certfile=certfile, keyfile=keyfile,
        data_dir=data_dir, plain_port=plain_port, tls_port=tls_port,
    )


def auth_lines(dynsec_file: Path) -> str:
    """extra_conf for host_tools.broker.mosquitto.Mosquitto: the generated accounts (dynamic-security
    plugin: passwords, access rules, one client id per account)."""
    return f"plugin {dynsec.plugin_path()}\nplugin_opt_config_file {dynsec_file}\n"


def tls_listener_lines(port: int, cafile: Path, certfile: Path, keyfile: Path) -> str:
    """extra_conf adding the TLS listener (with per_listener_settings false it shares the auth above)."""
    return (f"listener {port} 127.0.0.1\ncafile {cafile}\ncertfile {certfile}\nkeyfile {keyfile}\n"
            "tls_version tlsv1.2\n")
