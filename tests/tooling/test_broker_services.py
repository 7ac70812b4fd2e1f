"""The host services against the project's broker config: the zone controller logs in as `controller`
under the one client id bound to that account, with a persistent session, and works (its retained state
reaches a technician's mosquitto_sub)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from host_tools import fw
from host_tools.config.secrets import Secrets
from host_tools.provision.core import provision

from test_broker_identity import Sub

ZONE = {"zone": "zt", "interval_s": 1, "heartbeat_s": 5, "signs": [{"id": "vsl-t1", "km": 1.0,
                                                                    "sources": ["bcn-t1"]}]}


def test_the_controller_runs_under_its_bound_id_with_a_persistent_session(secure_broker, provisioned, tmp_path):
    provision(Secrets.load(provisioned.secrets_dir), ["vsl-t1", "bcn-t1"], out=provisioned.out, tls_hosts=None,
              roles={"vsl-t1": "sign", "bcn-t1": "beacon"})
    secure_broker.restart()  # Mosquitto reads the accounts at start-up
    zone = tmp_path / "zone.json"
    zone.write_text(json.dumps(ZONE))
    log = open(tmp_path / "controller.log", "wb")
    ctl = subprocess.Popen([sys.executable, "-m", "host_tools.cli", "controller", "--zone", str(zone),
                            "--db", str(tmp_path / "audit.sqlite"), "--quiet", "--broker", secure_broker.url,
                            "--secrets", str(provisioned.secrets_dir)], cwd=fw.REPO, stdout=log,
                           stderr=subprocess.STDOUT, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    watch = Sub(secure_broker.port, "technician", provisioned.password("technician"), ["re/ctl/zt/state"], "5")
    try:
        line = watch.next(timeout=60)
        assert line is not None and line.startswith("re/ctl/zt/state "), (line, (tmp_path / "controller.log")
                                                                           .read_text())
        assert json.loads(line.split(" ", 1)[1])["zone"] == "zt"
        # the broker's own account of it: client id `controller`, clean session off (c0)
        assert "as controller (p2, c0," in secure_broker.log_path.read_text()
    finally:
        watch.close()
        ctl.terminate()
        ctl.wait(20)
        log.close()
