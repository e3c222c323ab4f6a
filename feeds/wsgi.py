"""The process entry point for WSGI servers without hooks (granian, the Procfile's
server): `granian --interface wsgi feeds.wsgi:app`.

Importing it in a worker process builds the app, which only reads what the builder
process (`feeds.builder`, started by `feeds serve`) publishes: a web worker never
scans, parses or builds, and never imports the code that does.
"""

from __future__ import annotations

import signal
import sys

# granian's worker takes its signal handlers only after this import; until then it has
# its parent's, which ignore a SIGTERM sent to the worker, and the worker would outlive
# the shutdown. With the default action, a SIGTERM during start-up simply ends it.
signal.signal(signal.SIGTERM, signal.SIG_DFL)

# These imports are most of the start-up time: they come after the handler on purpose.
from feeds import logs  # noqa: E402
from feeds.config import load_settings  # noqa: E402
from feeds.errors import ConfigError  # noqa: E402
from feeds.hostcheck import SingleHost  # noqa: E402
from feeds.web import create_app  # noqa: E402

try:
    settings = load_settings()
    # granian cannot refuse a second Host line itself (gunicorn does): see feeds.hostcheck.
    app = SingleHost(create_app(settings))  # checks the state directory (ConfigError when unsafe)
except ConfigError as error:
    print(f"feeds: configuration error: {error}", file=sys.stderr)
    sys.exit(2)

logs.configure(log_format=settings.log_format)
