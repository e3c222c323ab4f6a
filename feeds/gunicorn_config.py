"""gunicorn settings and hooks: `gunicorn -c python:feeds.gunicorn_config 'feeds.web:create_app()'`.

The workers only serve what the builder process (`feeds.builder`) publishes; none of
them builds. `feeds serve --server gunicorn` starts that builder beside gunicorn. Run
directly, gunicorn starts none: the master then says so in its log at start-up, and
/healthz reports `"builder": "stopped"` until a builder (`python -m feeds.builder`,
with the same environment) holds the state directory's lease.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from feeds import logs
from feeds.config import load_settings
from feeds.errors import ConfigError
from feeds.published import PublishedStore, default_state_dir
from feeds.supervisor import SUPERVISOR_ENV

# A configuration error (an unsafe state directory too) stops the master before any
# worker starts: one line, exit 2.
try:
    _settings = load_settings()
    PublishedStore(default_state_dir(_settings))
except ConfigError as error:
    print(f"feeds: configuration error: {error}", file=sys.stderr)
    sys.exit(2)

# Loopback unless told otherwise, like `feeds serve`: `--bind` (which `feeds serve --host`
# passes) opens it, e.g. `--bind 0.0.0.0:$PORT` where a PaaS router must reach it.
bind = [f"127.0.0.1:{os.environ.get('PORT', '8000')}"]
workers = int(os.environ.get("WEB_CONCURRENCY", "2"))
# Feed requests are answered from memory in microseconds: sync workers suffice.
worker_class = "sync"
graceful_timeout = 10
# Request limits, past which gunicorn answers 431 (or 400): a request line of 4094 bytes,
# 100 header fields of 8190 bytes each. They are gunicorn's defaults, written out because
# `feeds serve` gives granian a limit of its own (feeds.cli.MAX_REQUEST_HEAD) and both
# servers must refuse a 64 KB header; gunicorn also refuses a second Host itself.
limit_request_line = 4094
limit_request_fields = 100
limit_request_field_size = 8190
accesslog = None
control_socket_disable = True  # gunicorn 27's control socket lives in $HOME: one per user, not per server
errorlog = "-"


def when_ready(server: Any) -> None:
    if not os.environ.get(SUPERVISOR_ENV):
        server.log.error(
            "no builder runs beside this gunicorn: the feeds are published by `python -m feeds.builder` "
            "(which `feeds serve --server gunicorn` starts); until one runs, nothing new is published "
            "and /healthz says builder: stopped"
        )


def post_fork(server: Any, worker: Any) -> None:
    logs.configure(log_format=_settings.log_format)
