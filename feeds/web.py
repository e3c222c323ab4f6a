"""The HTTP face: a Flask app that serves the published feeds from memory.

`create_app()` is the factory gunicorn calls (`feeds.web:create_app()`); it reads the
settings when called, never at import, and starts no threads. It only reads what the
builder process (`feeds.builder`) publishes, and imports none of the build code.
"""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import threading
import zlib
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

from flask import Flask, Response

from feeds.caching import Representation, answer, content_digest
from feeds.config import Settings, image_origin, load_settings
from feeds.lease import LEASE_FILE, is_held
from feeds.metrics import Metrics, for_process
from feeds.published import PublishedStore, UnsafeStateError, default_state_dir, generation_number
from feeds.routes import (
    ATOM_TYPE,
    JSON_TYPE,
    KINDS,
    OPML_PATH,
    OPML_TYPE,
    PAGE_FILE,
    RSS_TYPE,
    page_path,
    term_key,
)

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

HTML_TYPE = "text/html; charset=utf-8"
# Content types by file name; each site, section, tag, category, author or archive feed
# is one of these.
CONTENT_TYPES = {
    "rss.xml": f"{RSS_TYPE}; charset=utf-8",
    "atom.xml": f"{ATOM_TYPE}; charset=utf-8",
    "feed.json": f"{JSON_TYPE}; charset=utf-8",
    "index.html": HTML_TYPE,
    "feed.xsl": "text/xsl; charset=utf-8",
    OPML_PATH: f"{OPML_TYPE}; charset=utf-8",
}
XML_FEED_TYPES = frozenset({CONTENT_TYPES["rss.xml"], CONTENT_TYPES["atom.xml"]})
# Feeds that a browser's navigation sees as their folder's HTML page (feeds.feedpage).
PAGED_TYPES = XML_FEED_TYPES | {CONTENT_TYPES["feed.json"]}
_FEED_NAMES = frozenset({"rss.xml", "atom.xml", "feed.json"})
BROWSER_TYPE = "application/xml; charset=utf-8"
# Paths that exist before the first build: until then they answer 503, not 404.
CORE_PATHS = frozenset({"/rss.xml", "/atom.xml", "/feed.json", "/", "/" + OPML_PATH})
ALLOWED = "GET, HEAD"
# The index shows text and links only: no scripts, frames, forms or outside resources.
HTML_POLICY = (
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
    "frame-ancestors 'none'"
)
RETRY_AFTER_SECONDS = "5"
# What /healthz tells anyone: state, times and counts. The failure's text and the
# problem files (paths, quoted values, drafts among them) are in the log, and on
# /healthz only with the health_details setting.
# `builder` is "running" while a builder process holds the state directory's lease.
HEALTH_KEYS = (
    "status",
    "last_attempt",
    "last_success",
    "generation",
    "posts_used",
    "posts_skipped",
    "error",
    "builder",
)
HEALTH_DETAIL_KEYS = ("last_error", "skipped")

log = logging.getLogger("feeds.web")


def html_policy(settings: Settings) -> str:
    """HTML_POLICY, letting the pages load the site's icon: browsers apply `img-src`
    to the icon a page links (Chromium blocks it under `default-src 'none'`)."""
    return f"{HTML_POLICY}; img-src {image_origin(settings.icon)}" if settings.icon else HTML_POLICY


def route_of(file_name: str) -> str:
    """The URL path that serves a published file: `index.html` is `/`."""
    return "/" if file_name == "index.html" else "/" + file_name


def canonical_path(path_info: str) -> str:
    """The request path as the routes spell it: WSGI's latin-1 PATH_INFO decoded as
    UTF-8, and a tag, category, author or section segment in its key form, so that
    `/tags/C++/rss.xml`, `/tags/Web%20Dev/rss.xml` and `/Notes/rss.xml` find `c++`,
    `web-dev` and the section `notes`."""
    try:
        path = path_info.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return path_info
    parts = path.split("/")
    if len(parts) == 4 and parts[1] in KINDS and parts[2]:
        parts[2] = term_key(parts[2]) or parts[2]
        return "/".join(parts)
    if len(parts) == 3 and parts[1] and parts[2] in _FEED_NAMES:
        parts[1] = term_key(parts[1]) or parts[1]  # a section's feed: /<section>/rss.xml
        return "/".join(parts)
    return path


class Snapshots:
    """This worker's view of the current generation: one `readlink` per request to
    notice a new one, and each document's blob read on its first request only, so a
    site with many tag feeds and archive pages costs memory only for what is asked. The
    manifest gives each document's digest, which is its ETag: no body is hashed here,
    and a blob already read is kept across generations while they refer to it. Under
    threads, the generation served only ever moves forward."""

    def __init__(
        self, store: PublishedStore, max_age: int, stale_while_revalidate: int = 0, stale_if_error: int = 0
    ) -> None:
        self.store = store
        self.max_age = max_age
        self.stale_while_revalidate = stale_while_revalidate
        self.stale_if_error = stale_if_error
        self._name: str | None = None
        self._files: Mapping[str, Mapping[str, Any]] = {}  # route -> file name and metadata
        self._pages: Mapping[str, Mapping[str, Any]] = {}  # page file name -> metadata
        self._representations: dict[str, Representation] = {}
        self._page_representations: dict[str, Representation] = {}  # shared by a folder's feeds
        self._blobs: dict[str, tuple[bytes, bytes]] = {}  # digest -> identity and gzip bytes
        self._lock = threading.Lock()

    def representation(self, path: str) -> Representation | None:
        """The representation served at `path`; None when there is none (yet)."""
        name = self.store.current_name()
        with self._lock:
            for _ in range(3):
                try:
                    if name != self._name and self._moves_forward(name):
                        self._switch(name)
                    return self._representation(path)
                except FileNotFoundError as error:
                    # The manifest pruned or a blob collected under us: a newer one is current.
                    missing = error
                    name = self.store.current_name()
                except UnsafeStateError as error:
                    # Never served: the request fails (500), and the log says why.
                    log.error("refusing to serve %s: %s", path, error)
                    raise
            if name is not None and name == self._name:
                # Still the generation in service: a file it names is gone (deleted by
                # hand, a disk lost it), which no retry mends; say so rather than answer
                # as if nothing were built yet.
                log.error("cannot serve %s: generation %s lacks a file (%s)", path, name, missing)
                raise UnsafeStateError(f"generation {name} lacks a file it names: {missing}")
            return None

    def _moves_forward(self, name: str | None) -> bool:
        """Whether `name`, read from `current` before taking the lock, may replace the
        generation held. A thread that read the link before a publish can get here
        after one that read it later and switched to the new generation: taking the
        older name then would serve old bytes after new ones. An older name is taken
        only when the one held is gone (the state directory was started afresh)."""
        held = self._name
        if held is None:
            return True
        seen, number = generation_number(name), generation_number(held)
        if number is None or (seen is not None and seen > number):
            return True
        return not self.store.has(held)

    def _switch(self, name: str | None) -> None:
        files: Mapping[str, Mapping[str, Any]] = {}
        pages: Mapping[str, Mapping[str, Any]] = {}
        if name is not None:
            described = self.store.read_manifest(name)["files"]
            files = {
                route_of(file_name): {"file": file_name, **about}
                for file_name, about in described.items()
                if file_name.rpartition("/")[2] in CONTENT_TYPES
            }
            pages = {
                file_name: about
                for file_name, about in described.items()
                if file_name.rpartition("/")[2] == PAGE_FILE
            }
        digests = {about["digest"] for about in [*files.values(), *pages.values()]}
        self._blobs = {digest: blob for digest, blob in self._blobs.items() if digest in digests}
        self._files, self._pages, self._name = files, pages, name
        self._representations, self._page_representations = {}, {}

    def _representation(self, path: str) -> Representation | None:
        if path in self._representations:
            return self._representations[path]
        about = self._files.get(path)
        if about is None or self._name is None:
            return None
        file_name = about["file"]
        content_type = CONTENT_TYPES[file_name.rpartition("/")[2]]
        page = self._page(page_path(file_name)) if content_type in PAGED_TYPES else None
        representation = self._read(
            about,
            content_type,
            browser_type=BROWSER_TYPE if content_type in XML_FEED_TYPES else None,
            page=page,
        )
        self._representations[path] = representation
        return representation

    def _page(self, file_name: str) -> Representation | None:
        """The HTML page of a folder of feeds, read once for all of them; None when the
        generation has none (one published before pages existed)."""
        if file_name in self._page_representations:
            return self._page_representations[file_name]
        about = self._pages.get(file_name)
        if about is None or self._name is None:
            return None
        page = self._read(about, HTML_TYPE)
        self._page_representations[file_name] = page
        return page

    def _read(
        self,
        about: Mapping[str, Any],
        content_type: str,
        browser_type: str | None = None,
        page: Representation | None = None,
    ) -> Representation:
        last_modified = about.get("last_modified")
        digest = about["digest"]
        if digest not in self._blobs:
            self._blobs[digest] = _checked(
                digest, self.store.read_blob(digest), self.store.read_blob(digest, gzipped=True)
            )
        body, gzip_body = self._blobs[digest]
        return Representation.of(
            body,
            content_type,
            dt.datetime.fromisoformat(last_modified) if last_modified else None,
            about.get("max_age") or self.max_age,
            gzip_body=gzip_body,
            browser_type=browser_type,
            page=page,
            stale_while_revalidate=self.stale_while_revalidate,
            stale_if_error=self.stale_if_error,
            digest=digest,
        )


def _checked(digest: str, body: bytes, gzip_body: bytes) -> tuple[bytes, bytes]:
    """A blob and its twin as read, once they are known to be the bytes `digest` names
    (its ETag): a blob damaged on disk, even keeping its size, is never served. Checked
    at a worker's first read of each blob only, some 0.2 ms for a 100 KB feed."""
    try:
        whole = content_digest(body) == digest and gzip.decompress(gzip_body) == body
    except (OSError, EOFError, zlib.error):
        whole = False
    if not whole:
        raise UnsafeStateError(f"blob {digest}: its bytes are not those of its digest (damaged)")
    return body, gzip_body


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or load_settings()
    store = PublishedStore(default_state_dir(settings))
    snapshots = Snapshots(store, settings.max_age, settings.stale_while_revalidate, settings.stale_if_error)
    metrics = for_process(store.root / "metrics") if settings.metrics else None
    app = Flask(__name__)
    app.config["FEEDS_SETTINGS"] = settings

    health_keys = HEALTH_KEYS + (HEALTH_DETAIL_KEYS if settings.health_details else ())

    def healthz() -> Response:
        # The same keys before the first build as after it, null until known.
        record = store.read_health() or {"status": "starting"}
        body = {key: record.get(key) for key in health_keys}
        body["builder"] = "running" if is_held(store.root / LEASE_FILE) else "stopped"
        status = 200 if store.current_name() is not None else 503
        response = Response(json.dumps(body, sort_keys=True) + "\n", status, mimetype="application/json")
        response.headers["Cache-Control"] = "no-store"
        return response

    app.add_url_rule("/healthz", view_func=healthz, methods=["GET"], provide_automatic_options=False)

    if metrics is not None:

        def scrape() -> Response:
            text, content_type = metrics.exposition()
            return Response(text, 200, content_type=content_type, headers={"Cache-Control": "no-store"})

        app.add_url_rule("/metrics", view_func=scrape, methods=["GET"], provide_automatic_options=False)

    @app.after_request
    def security_headers(response: Response) -> Response:
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response

    policy = html_policy(settings)
    app.wsgi_app = CachedFeeds(app.wsgi_app, snapshots, metrics, policy)  # type: ignore[method-assign]
    return app


class CachedFeeds:
    """WSGI middleware answering the published feeds straight from memory.

    A feed poll is the hot path: it skips Flask's routing, request and response objects
    (and Werkzeug's removal of Last-Modified from 304s, which RFC 9110 §15.4.5 allows
    and feed readers use). It also answers other methods on those paths (405) and the
    site's own feeds before the first build (503). Every other path goes to Flask.
    HTML answers (the index, a feed's page) carry `policy` as Content-Security-Policy.
    """

    def __init__(
        self,
        app: WSGIApplication,
        snapshots: Snapshots,
        metrics: Metrics | None = None,
        policy: str = HTML_POLICY,
    ) -> None:
        self.app = app
        self.snapshots = snapshots
        self.metrics = metrics
        self.policy = policy

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = canonical_path(environ.get("PATH_INFO", ""))
        if self.metrics is None:
            return self._answer(path, environ, start_response)

        metrics = self.metrics

        def counting(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            metrics.request(path, int(status[:3]))  # every answer, ours and Flask's
            return start_response(status, headers, exc_info)

        return self._answer(path, environ, counting)

    def _answer(self, path: str, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        method = environ["REQUEST_METHOD"]
        if not method.isupper():
            # Methods are case-sensitive (RFC 9110 §9.1); Werkzeug would upper-case `get`.
            return _not_allowed(start_response)
        representation = self.snapshots.representation(path)
        if representation is None:
            if path in CORE_PATHS:
                return plain_answer(
                    start_response,
                    "503 Service Unavailable",
                    "The first build has not finished yet.\n",
                    [("Retry-After", RETRY_AFTER_SECONDS)],
                )
            return self.app(environ, start_response)
        if method not in ("GET", "HEAD"):
            return _not_allowed(start_response)
        result = answer(
            representation,
            if_none_match=environ.get("HTTP_IF_NONE_MATCH"),
            if_modified_since=environ.get("HTTP_IF_MODIFIED_SINCE"),
            accept_encoding=environ.get("HTTP_ACCEPT_ENCODING"),
            accept=environ.get("HTTP_ACCEPT"),
            sec_fetch_mode=environ.get("HTTP_SEC_FETCH_MODE"),
            sec_fetch_dest=environ.get("HTTP_SEC_FETCH_DEST"),
        )
        headers = [*result.headers, ("X-Content-Type-Options", "nosniff")]
        if result.content_type == HTML_TYPE:
            headers.append(("Content-Security-Policy", self.policy))
        start_response(_STATUS_LINES[result.status], headers)
        return [] if method == "HEAD" else [result.body]


def _not_allowed(start_response: StartResponse) -> list[bytes]:
    return plain_answer(
        start_response, "405 Method Not Allowed", "Method not allowed.\n", [("Allow", ALLOWED)]
    )


def plain_answer(
    start_response: StartResponse, status: str, text: str, extra: Iterable[tuple[str, str]] = ()
) -> list[bytes]:
    """A short text answer that no cache keeps: errors and refusals outside the feeds."""
    body = text.encode()
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            ("X-Content-Type-Options", "nosniff"),
            *extra,
        ],
    )
    return [body]


_STATUS_LINES = {200: "200 OK", 304: "304 Not Modified"}
