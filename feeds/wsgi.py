"""The process entry point for WSGI servers without hooks (granian, the Procfile's
server): `granian --interface wsgi feeds.wsgi:app`.

Importing it in a worker process builds the app and starts that process's watcher
scheduler; the file lease lets exactly one process of the instance poll.
"""

from __future__ import annotations

import atexit
import sys

from feeds import logs
from feeds.config import load_settings
from feeds.errors import ConfigError
from feeds.watcher import WatcherService
from feeds.web import create_app

try:
    settings = load_settings()
except ConfigError as error:
    print(f"feeds: configuration error: {error}", file=sys.stderr)
    sys.exit(2)

logs.configure(log_format=settings.log_format)
app = create_app(settings)
watcher = WatcherService(settings)
watcher.start()
atexit.register(watcher.stop)
