"""The dispatcher console: `roadedge dispatch`.

One process ingests every device topic into SQLite and serves the web console:

    MQTT --paho--> ingest.py --queue--> decode.py (topic + payload -> Record | Reject)
                                    \\-> store.py  (one transaction per batch; unique (device, kind, seq))
                                          \\-> console.py on_change -> bus.py -> web.py /api/events (SSE)
    browser (static/, Leaflet from npm) <-> web.py JSON API -> console.py (roles, audit, signed commands)
                                                          \\-> sanitize.py (device values checked for the page)

- the nearest-unit ranking by road: host_tools/deployment/roadnet.py (the simulator's riders use the same graph).
- fog_extent.py: fog extent along the road from the beacons' visibility; export.py: GPX / GeoJSON tracks.
- web.py: Starlette on uvicorn (its own thread and event loop): bounded bodies, header/idle deadlines, TLS,
  password hashing on a fixed pool. users.py: accounts (Argon2id, `--add-user`, password policy with
  common-passwords.txt), in-memory sessions (HttpOnly cookie + CSRF token), the login throttle.
- service.py wires it all for the CLI, tests and the demo; assets.py installs the browser libraries.

Set-up: `python -m host_tools.dispatch.assets` (npm install of web/package.json, copied into static/vendor).
Topics read and written: docs/topics.md, section "Dispatch console".
"""
