"""Short stress runs against the real servers while the content changes every second:
every answer must be a complete, parseable 200 whose ETag matches its bytes, or a 304
for exactly the ETag the client holds (see tests/stress/load.py)."""

from __future__ import annotations

import gzip
import hashlib
import http.server
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from lxml import etree

from conftest import WritePost, post_text
from server import Server
from stress import load, stop_server

POSTS = 30
REWRITTEN = "p00.txt"
FIRST_DATE = 1_600_000_000


def write_posts(write_post: WritePost) -> None:
    for n in range(POSTS):
        write_post(
            f"p{n:02d}.txt",
            post_text(title=f"Post number {n}", date=str(FIRST_DATE + n * 3600), body=f"Body {n}.\n" * 40),
        )


class Rewriter:
    """Rewrites one post every `interval` seconds with a new title and a newer date, so
    every feed (and its ETag) changes, until stopped; bounded in count as well."""

    def __init__(self, write_post: WritePost, interval: float = 1.0, limit: int = 120) -> None:
        self.write_post = write_post
        self.interval = interval
        self.limit = limit
        self.rewrites = 0
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, name="rewriter", daemon=True)

    def _loop(self) -> None:
        while self.rewrites < self.limit and not self.stopped.wait(self.interval):
            self.rewrites += 1
            date = FIRST_DATE + POSTS * 3600 + self.rewrites * 60
            self.write_post(REWRITTEN, post_text(title=f"Rewritten {self.rewrites} times", date=str(date)))

    def __enter__(self) -> Rewriter:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=10)


def stress(server: Server, write_post: WritePost, seconds: float) -> load.Report:
    try:
        server.wait_until_ready()
        server.wait_for("/rss.xml", "Post number 29")
        with Rewriter(write_post) as rewriter:
            report = load.run(
                f"http://127.0.0.1:{server.port}", seconds=seconds, clients=8, max_requests=200_000
            )
        print(report.summary())
    finally:
        exit_status = stop_server(server)
    figures = f"{report.summary()}\n({rewriter.rewrites} rewrites of {REWRITTEN})"
    assert report.failures == 0, figures
    assert report.requests > 0 and report.by_status.get(200, 0) > 0, figures
    assert report.by_status.get(304, 0) > 0, f"no conditional request was answered 304\n{figures}"
    assert report.etag_changes >= 1, f"the clients never saw a feed change during the run\n{figures}"
    assert exit_status == 0, f"the server exited with {exit_status}\n{server.errors()[-3000:]}"
    assert "Traceback" not in server.errors(), server.errors()[-3000:]
    return report


def test_granian_under_load_while_posts_change(
    tmp_path: Path, content_dir: Path, write_post: WritePost
) -> None:
    write_posts(write_post)
    server = Server(tmp_path, content_dir, via_cli=True, state_dir=str(tmp_path / "state"), poll_interval="1")
    stress(server, write_post, seconds=6)


def test_gunicorn_under_load_while_posts_change(
    tmp_path: Path, content_dir: Path, write_post: WritePost
) -> None:
    write_posts(write_post)
    server = Server(tmp_path, content_dir, state_dir=str(tmp_path / "state"), poll_interval="1")
    stress(server, write_post, seconds=4)


# --- the checker itself, against a small loopback server that can be told to lie --------------------

RSS = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<rss version="2.0"><channel><title>t</title></channel></rss>\n'
)
ATOM = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n'
    b'<feed xmlns="http://www.w3.org/2005/Atom"><title>t</title></feed>\n'
)
JSON_FEED = json.dumps({"version": "https://jsonfeed.org/version/1.1", "title": "t", "items": []}).encode()
BODIES = {"/rss.xml": RSS, "/atom.xml": ATOM, "/feed.json": JSON_FEED}


def etag_of(body: bytes, gzipped: bool) -> str:
    digest = hashlib.blake2b(body, digest_size=16).hexdigest()
    return f'"{digest}-gzip"' if gzipped else f'"{digest}"'


class FakeFeeds(http.server.BaseHTTPRequestHandler):
    """Serves BODIES like feeds does, or with one fault (the server's `fault`)."""

    protocol_version = "HTTP/1.1"
    server: FakeServer

    def do_GET(self) -> None:
        body = BODIES.get(self.path)
        if body is None:
            self.send_error(404)
            return
        gzipped = "gzip" in (self.headers.get("Accept-Encoding") or "")
        etag = etag_of(body, gzipped)
        fault = self.server.fault
        if fault == "stale-etag":  # new bytes under the ETag of other bytes
            etag = etag_of(body + b" ", gzipped)
        sent = self.headers.get("If-None-Match")
        if fault == "blind-304" and sent is not None:
            self.send_response(304)
            self.send_header("ETag", sent.replace('"', '"x', 1))
            self.end_headers()
            return
        if sent == etag:
            self.send_response(304)
            self.send_header("ETag", etag)
            self.end_headers()
            return
        wire = gzip.compress(body) if gzipped else body
        self.send_response(200)
        self.send_header("ETag", etag)
        self.send_header("Content-Type", load.CONTENT_TYPES[self.path])
        self.send_header("Content-Length", str(len(wire)))
        if gzipped:
            self.send_header("Content-Encoding", "gzip")
        if fault == "torn":
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(wire[: len(wire) // 2] if fault == "torn" else wire)

    def log_message(self, format: str, *args: object) -> None:
        pass


class FakeServer(http.server.ThreadingHTTPServer):
    daemon_threads = True
    fault: str | None = None


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer(("127.0.0.1", 0), FakeFeeds)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def base_url(server: FakeServer) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_load_stops_at_max_requests(fake: FakeServer) -> None:
    report = load.run(base_url(fake), seconds=30, clients=3, max_requests=60)
    assert report.requests == 60, report.summary()
    assert report.failures == 0, report.summary()
    assert report.by_status == {200: 60 - report.by_status.get(304, 0), 304: report.by_status[304]}
    assert report.p50_ms <= report.p99_ms


def test_load_stops_at_the_deadline(fake: FakeServer) -> None:
    started = time.monotonic()
    report = load.run(base_url(fake), seconds=0.5, clients=2, max_requests=10**9)
    assert time.monotonic() - started < 5
    assert report.failures == 0 and report.requests > 0, report.summary()


@pytest.mark.parametrize(
    ("fault", "reason"),
    [
        ("stale-etag", "does not match the bytes served"),
        ("blind-304", "but the client sent"),
        ("torn", "IncompleteRead"),
    ],
)
def test_load_catches_a_lying_server(fake: FakeServer, fault: str, reason: str) -> None:
    fake.fault = fault
    report = load.run(base_url(fake), seconds=5, clients=2, max_requests=40)
    assert report.failures > 0
    assert any(reason in line for line in report.reasons), report.summary()


@pytest.mark.parametrize(
    "url", ["http://10.0.0.1:80", "http://example.com", "https://127.0.0.1:1", "ftp://[::1]"]
)
def test_load_talks_to_loopback_only(url: str) -> None:
    with pytest.raises(ValueError, match=r"loopback|base URL"):
        load.run(url, seconds=1, clients=1, max_requests=1)


class Answer:
    """Enough of http.client.HTTPResponse for check_answer."""

    def __init__(self, status: int, headers: dict[str, str]) -> None:
        self.status = status
        self.headers = {name.lower(): value for name, value in headers.items()}

    def getheader(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name.lower(), default)


def ok_headers(
    path: str, body: bytes, gzipped: bool = False, identity: bytes | None = None
) -> dict[str, str]:
    headers = {
        "ETag": etag_of(identity if identity is not None else body, gzipped),
        "Content-Type": load.CONTENT_TYPES[path],
        "Content-Length": str(len(body)),
    }
    if gzipped:
        headers["Content-Encoding"] = "gzip"
    return headers


def check(
    path: str,
    status: int,
    headers: dict[str, str],
    body: bytes,
    gzipped: bool = False,
    sent: str | None = None,
) -> str | None:
    return load.check_answer(path, gzipped, sent, Answer(status, headers), body, etree.XMLParser())


def test_checker_accepts_good_answers() -> None:
    for path, body in BODIES.items():
        assert check(path, 200, ok_headers(path, body), body) is None
        packed = gzip.compress(body)
        assert check(path, 200, ok_headers(path, packed, True, body), packed, gzipped=True) is None
        etag = etag_of(body, False)
        assert check(path, 304, {"ETag": etag}, b"", sent=etag) is None


def test_checker_rejects_bad_answers() -> None:
    rss_etag = etag_of(RSS, False)
    other = RSS.replace(b"<title>t", b"<title>u")
    cases = {
        "status 500": check("/rss.xml", 500, {}, b""),
        "torn body": check("/rss.xml", 200, {**ok_headers("/rss.xml", RSS), "Content-Length": "999"}, RSS),
        "mixed read": check(
            "/rss.xml", 200, {**ok_headers("/rss.xml", RSS), "ETag": etag_of(other, False)}, RSS
        ),
        "atom on rss path": check(
            "/rss.xml",
            200,
            {**ok_headers("/atom.xml", ATOM), "Content-Type": load.CONTENT_TYPES["/rss.xml"]},
            ATOM,
        ),
        "bad xml": check("/atom.xml", 200, ok_headers("/atom.xml", b"<feed>"), b"<feed>"),
        "bad json": check("/feed.json", 200, ok_headers("/feed.json", b"{"), b"{"),
        "bad gzip": check("/rss.xml", 200, ok_headers("/rss.xml", b"nope", True, RSS), b"nope", gzipped=True),
        "gzip unasked": check(
            "/rss.xml", 200, {**ok_headers("/rss.xml", RSS), "Content-Encoding": "gzip"}, RSS
        ),
        "stale 304": check("/rss.xml", 304, {"ETag": etag_of(other, False)}, b"", sent=rss_etag),
        "unasked 304": check("/rss.xml", 304, {"ETag": rss_etag}, b""),
        "200 for a match": check("/rss.xml", 200, ok_headers("/rss.xml", RSS), RSS, sent=rss_etag),
        "wrong type": check(
            "/rss.xml", 200, {**ok_headers("/rss.xml", RSS), "Content-Type": "text/html"}, RSS
        ),
    }
    assert [name for name, problem in cases.items() if problem is None] == []
