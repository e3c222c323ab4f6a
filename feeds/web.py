"""The HTTP face: a Flask app that serves the published feeds from memory.

`create_app()` is the factory gunicorn calls (`feeds.web:create_app()`); it reads the
settings when called, never at import, and starts no threads: the watcher is wired by
the process entry point (see `feeds.gunicorn_config`).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

from flask import Flask, Response

from feeds.caching import Representation, answer
from feeds.config import Settings, load_settings
from feeds.published import PublishedStore, default_state_dir
from feeds.xmlfeeds import ATOM_TYPE, JSON_TYPE, RSS_TYPE

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

HTML_TYPE = "text/html; charset=utf-8"
ROUTES = {
    "/rss.xml": ("rss.xml", f"{RSS_TYPE}; charset=utf-8"),
    "/atom.xml": ("atom.xml", f"{ATOM_TYPE}; charset=utf-8"),
    "/feed.json": ("feed.json", f"{JSON_TYPE}; charset=utf-8"),
    "/": ("index.html", HTML_TYPE),
}
# The index shows text and links only: no scripts, frames, forms or outside resources.
HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
RETRY_AFTER_SECONDS = "5"


class Snapshots:
    """This worker's copy of the current generation, reloaded when the watcher
    publishes a new one: one `readlink` per request, one load per change."""

    def __init__(self, store: PublishedStore, max_age: int) -> None:
        self.store = store
        self.max_age = max_age
        self._name: str | None = None
        self._representations: Mapping[str, Representation] = {}
        self._lock = threading.Lock()

    def representation(self, path: str) -> Representation | None:
        name = self.store.current_name()
        if name != self._name:
            with self._lock:
                self._load()
        return self._representations.get(path)

    def _load(self) -> None:
        generation = self.store.load_current()
        if generation is None:
            self._name, self._representations = None, {}
            return
        updated = generation.meta.get("updated")
        last_modified = dt.datetime.fromisoformat(updated) if updated else None
        self._representations = {
            path: Representation.of(
                generation.files[file_name],
                content_type,
                last_modified,
                self.max_age,
                gzip_body=generation.files[file_name + ".gz"],
            )
            for path, (file_name, content_type) in ROUTES.items()
        }
        self._name = generation.name


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    store = PublishedStore(default_state_dir(settings))
    snapshots = Snapshots(store, settings.max_age)
    app = Flask(__name__)
    app.config["FEEDS_SETTINGS"] = settings

    def not_built_yet() -> Response:
        # Reached only when the fast path had no generation to serve.
        response = Response("The first build has not finished yet.\n", 503, mimetype="text/plain")
        response.headers["Retry-After"] = RETRY_AFTER_SECONDS
        response.headers["Cache-Control"] = "no-store"
        return response

    def healthz() -> Response:
        body = store.read_health() or {"status": "starting", "last_success": None, "last_error": None}
        status = 200 if store.current_name() is not None else 503
        response = Response(json.dumps(body, sort_keys=True) + "\n", status, mimetype="application/json")
        response.headers["Cache-Control"] = "no-store"
        return response

    for path in ROUTES:
        app.add_url_rule(
            path, endpoint=path, view_func=not_built_yet, methods=["GET"], provide_automatic_options=False
        )
    app.add_url_rule("/healthz", view_func=healthz, methods=["GET"], provide_automatic_options=False)

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    app.wsgi_app = CachedFeeds(app.wsgi_app, snapshots)  # type: ignore[method-assign]
    return app


class CachedFeeds:
    """WSGI middleware answering GET and HEAD of the feed routes straight from memory.

    A feed poll is the hot path: it skips Flask's routing, request and response objects
    (and Werkzeug's removal of Last-Modified from 304s, which RFC 9110 §15.4.5 allows
    and feed readers use). Every other request, including other methods on these paths
    (405 with Allow) and requests before the first build (503), goes to Flask.
    """

    def __init__(self, app: WSGIApplication, snapshots: Snapshots) -> None:
        self.app = app
        self.snapshots = snapshots

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        path = environ.get("PATH_INFO", "")
        if method not in ("GET", "HEAD") or path not in ROUTES:
            return self.app(environ, start_response)
        representation = self.snapshots.representation(path)
        if representation is None:
            return self.app(environ, start_response)
        result = answer(
            representation,
            if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
            if_modified_since=environ.get("HTTP_IF_MODIFIED_SINCE"),
            accept_encoding=environ.get("HTTP_ACCEPT_ENCODING"),
        )
        headers = [*result.headers, ("X-Content-Type-Options", "nosniff")]
        if representation.content_type == HTML_TYPE:
            headers.append(("Content-Security-Policy", HTML_POLICY))
        start_response(_STATUS_LINES[result.status], headers)
        return [] if method == "HEAD" else [result.body]


_STATUS_LINES = {200: "200 OK", 304: "304 Not Modified"}
