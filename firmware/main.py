# Board boot: run the device app from /config.json (see roadedge.core.app).
from roadedge.core import app

app.main()
