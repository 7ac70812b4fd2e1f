"""The dispatcher console: `roadedge dispatch`.

One process ingests every device topic into SQLite and serves the web console:

    MQTT --paho--> ingest.py --queue--> decode.py (topic + payload -> Record | Reject)
                                    \\-> store.py  (one transaction per batch; unique (device, kind, seq))
                                          \\-> console.py on_change -> bus.py -> web.py /api/events (SSE)
    browser (static/, Leaflet from npm) <-> web.py JSON API -> console.py (roles, audit, signed commands)
                                                          \\-> sanitize.py (device values checked for the page)

- the nearest-unit ranking by road: host_tools/deployment/roadnet.py (the simulator's riders use the same graph).
- events.py: the event log (one table; device messages are logged by a store observer inside their ingest
  transaction, via device_events.py); alarms.py: the console's own alarm rules (pure, fed with now_ms and the
  console's view); monitor.py runs them once a second and handles acknowledgements; events_api.py: its routes.
- fog_extent.py: fog extent along the road from the beacons' visibility; export.py: GPX / GeoJSON tracks.
- web.py: Starlette on uvicorn (its own thread and event loop): bounded bodies, header/idle deadlines, TLS,
  password hashing on a fixed pool. users.py: accounts (Argon2id, `--add-user`, password policy with
  common-passwords.txt), in-memory sessions (HttpOnly cookie + CSRF token), the login throttle.
- Accounts are read live: users.Users re-reads the accounts file when it changes (the CLI and the console both
  write it, under a lock) and users.Sessions.current holds every session against it on each request.
  accounts.py: a supervisor's account management (audited); web_admin.py: its routes and the reports'.
- reports.py: per unit-day distance / duty times / stops and per fog section presence / response times (pure);
  reports_db.py reads them from the store on a read-only connection; export.to_csv writes them injection-safe.
- service.py wires it all for the CLI, tests and the demo; assets.py installs the browser libraries.

Set-up: `python -m host_tools.dispatch.assets` (npm install of web/package.json, copied into static/vendor).
Topics read and written: docs/topics.md, section "Dispatch console".
"""
