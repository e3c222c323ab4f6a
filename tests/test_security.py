"""Hostile requests: path traversal, oversized URLs and headers, odd methods, malformed
request lines and Host headers, sent to the Flask app (test client) and, byte for byte
over raw sockets, to the real servers (`feeds serve` = granian, and gunicorn).

Every answer must be a 4xx, never a 5xx, and never carry file content; the server must
answer GET /rss.xml with 200 after each. Where a real server does not enforce an HTTP
rule that is its job, not the app's (a Host header, header sizes), the deviation is
listed in `SERVER_DEVIATIONS` and that case checks the safe properties only: no 5xx, no
file content, nothing reflected, the ordinary feed or a 4xx, and a healthy server after.
"""

from __future__ import annotations

import datetime as dt
import re
import socket
import time
import tomllib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import pytest
from flask.testing import FlaskClient
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from werkzeug.test import EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

from feeds.published import PublishedStore, default_state_dir
from feeds.watcher import Watcher
from feeds.web import HTML_POLICY, create_app

from conftest import MakeSettings, WritePost, post_text
from server import HOST, REPO, Server
from stress import stop_server

FIXED_NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
SCRIPT = "<script>alert(1)</script>"
NASTY_TITLE = f"Breaking {SCRIPT} news"
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
# A file beside the content directory (and in the server's working directory) that a
# traversal would reach; its lines are what /etc/passwd and win.ini look like.
CANARY = "root:x:0:0:canary-4417:/root:/bin/sh\n[fonts]\ncanary-4417\n"
LEAKS = (b"root:", b"[fonts]", b"canary-4417")
REFLECT = "zq-reflect-7"  # put in headers and Host: must never come back in an answer
ROUTES = ("/rss.xml", "/atom.xml", "/feed.json", "/", "/healthz")

TRAVERSALS = [
    "/../etc/passwd",
    "/..%2f..%2fetc%2fpasswd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/rss.xml/../../etc/passwd",
    "/..\\..\\windows\\win.ini",
    "/%5c..%5c",
    "/%5c..%5c..%5cwindows%5cwin.ini",
    "/rss.xml%00",
    "/rss.xml%00.html",
    "//etc/passwd",
    "/../../../../../../../../etc/passwd",
    "/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "/%252e%252e/%252e%252e/etc/passwd",
    "/atom.xml/..%2f..%2f..%2fetc%2fpasswd",
    "/feed.json%2f..%2f..%2fetc%2fpasswd",
    "/healthz/../../etc/passwd",
    "/feed.xsl/../../etc/passwd",
    "/tags/gardening/../../../etc/passwd",
    "/tags/..%2f..%2f..%2fetc%2fpasswd/rss.xml",
    "/tags/%2e%2e/rss.xml",
    "/categories/..%5c..%5cwindows%5cwin.ini/atom.xml",
    "/authors/..%2f..%2f..%2fetc%2fpasswd/rss.xml",
    "/authors/%2e%2e/feed.json",
    "/%2e%2e/rss.xml",  # the form of a section's feed
    "/..%2f..%2f..%2fetc%2fpasswd/rss.xml",
    "/..%5c..%5cwindows%5cwin.ini/atom.xml",
    "/secret.txt",
    "/../secret.txt",
    "/..%2fsecret.txt",
    "/%2e%2e/secret.txt",
    "/content/../secret.txt",
    "/empty.toml",
    "/%3Cscript%3Ealert(1)%3C/script%3E",
]
ABSOLUTE_FORM = "http://127.0.0.1/../../etc/passwd"
LONG_PATHS = {"8k": 8 * 1024, "64k": 64 * 1024, "1m": 1024 * 1024}
METHODS = ["TRACE", "CONNECT", "PROPFIND", "PATCH", "DELETE", "PUT", "POST", "X" * 100, "get"]
FORM_BODY = b"title=hello&body=%3Cscript%3E"


def method_id(method: str) -> str:
    return "100-char-method" if len(method) == 100 else method


# --- the Flask app ----------------------------------------------------------------------------------


@pytest.fixture
def client(make_settings: MakeSettings, write_post: WritePost, tmp_path: Path) -> FlaskClient:
    write_post("harbour.txt", post_text(extra="tags: [Gardening]"))
    write_post("nasty.txt", post_text(title=NASTY_TITLE, date="1602800000"))
    (tmp_path / "secret.txt").write_text(CANARY)
    settings = make_settings(state_dir=str(tmp_path / "state"))
    store = PublishedStore(default_state_dir(settings))
    assert Watcher(settings, store, clock=lambda: FIXED_NOW, settle_ns=0).poll() is True
    return create_app(settings).test_client()


def answered(response: TestResponse, what: str) -> TestResponse:
    """The safe properties of every answer of the app: nosniff, no 5xx, no file content,
    nothing reflected."""
    assert response.headers.get("X-Content-Type-Options") == "nosniff", f"{what}: no nosniff"
    assert response.status_code < 500, f"{what}: {response.status_code} {response.data[:200]!r}"
    for leak in LEAKS:
        assert leak not in response.data, f"{what}: answer contains {leak!r}"
    if response.status_code != 200 or response.mimetype == "text/html":
        # (feed.json carries the title as the plain text it is, under its own type)
        assert SCRIPT.encode() not in response.data, f"{what}: answer contains {SCRIPT}"
    assert REFLECT.encode() not in response.data, f"{what}: answer reflects a request header"
    return response


def assert_4xx(response: TestResponse, what: str) -> None:
    answered(response, what)
    assert 400 <= response.status_code < 500, (
        f"{what}: expected a 4xx, got {response.status_code} {dict(response.headers)} {response.data[:200]!r}"
    )


def assert_still_serving(client: FlaskClient) -> None:
    response = answered(client.get("/rss.xml"), "GET /rss.xml afterwards")
    assert response.status_code == 200
    assert response.data.startswith(b"<?xml")


@pytest.mark.parametrize("target", [*TRAVERSALS, ABSOLUTE_FORM])
def test_app_path_traversal_is_4xx(client: FlaskClient, target: str) -> None:
    assert_4xx(client.get(target), f"GET {target}")
    if not target.startswith("http"):
        # As a server hands it over: percent-decoded, dot segments left alone.
        path_info = unquote(target, encoding="latin-1")
        response = client.get("/", environ_overrides={"PATH_INFO": path_info, "RAW_URI": target})
        assert_4xx(response, f"GET with PATH_INFO {path_info!r}")
    assert_still_serving(client)


@pytest.mark.parametrize("size", LONG_PATHS.values(), ids=LONG_PATHS.keys())
def test_app_oversized_path_is_4xx(client: FlaskClient, size: int) -> None:
    assert_4xx(client.get("/" + "a" * size), f"GET of a {size}-byte path")
    assert_4xx(client.get("/rss.xml/" + "a" * size), f"GET of /rss.xml/ and {size} bytes")
    assert_still_serving(client)


@pytest.mark.parametrize("path", ROUTES)
@pytest.mark.parametrize("method", METHODS, ids=[method_id(m) for m in METHODS])
def test_app_odd_methods_are_4xx(client: FlaskClient, method: str, path: str) -> None:
    body = FORM_BODY if method in ("POST", "PUT", "PATCH") else None
    response = client.open(
        path,
        method=method,
        data=body,
        headers={"X-Probe": REFLECT, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_4xx(response, f"{method_id(method)} {path}")
    assert "ETag" not in response.headers
    assert_still_serving(client)


def environ_without_host(path: str) -> Request:
    environ = EnvironBuilder(path=path).get_environ()
    del environ["HTTP_HOST"]
    return Request(environ)


@pytest.mark.parametrize("path", ROUTES)
def test_app_oversized_headers_and_odd_hosts_are_safe(client: FlaskClient, path: str) -> None:
    """Header sizes and the Host header are the HTTP server's to police (the app behind
    WSGI never sees the wire): the app answers them safely. The real servers are
    checked for 4xx below."""
    cases = {
        "one 64 KB header": client.get(path, headers={"X-Big": REFLECT + "a" * 64 * 1024}),
        "500 headers": client.get(path, headers={f"X-H{n}": REFLECT for n in range(500)}),
        "a 64 KB Host": client.get(path, headers={"Host": REFLECT + "h" * 64 * 1024}),
        "no Host": client.open(environ_without_host(path)),
    }
    for what, response in cases.items():
        answered(response, f"GET {path} with {what}")
    assert_still_serving(client)


def test_app_nosniff_on_every_kind_of_answer(client: FlaskClient) -> None:
    etag = client.get("/rss.xml").headers["ETag"]
    responses = {
        "200 feed": client.get("/rss.xml"),
        "200 gzip": client.get("/atom.xml", headers={"Accept-Encoding": "gzip"}),
        "304": client.get("/rss.xml", headers={"If-None-Match": etag}),
        "HEAD": client.head("/feed.json"),
        "index": client.get("/"),
        "healthz": client.get("/healthz"),
        "404": client.get("/nope"),
        "405": client.post("/rss.xml"),
    }
    assert [r.status_code for r in responses.values()] == [200, 200, 304, 200, 200, 200, 404, 405]
    for what, response in responses.items():
        assert response.headers.get("X-Content-Type-Options") == "nosniff", what


def test_app_index_has_the_exact_csp(client: FlaskClient) -> None:
    get = client.get("/")
    assert get.status_code == 200
    assert get.headers["Content-Security-Policy"] == HTML_POLICY
    assert HTML_POLICY == (
        "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    )
    for response in (
        client.head("/"),
        client.get("/", headers={"Accept-Encoding": "gzip"}),
        client.get("/", headers={"If-None-Match": get.headers["ETag"]}),
    ):
        assert response.headers["Content-Security-Policy"] == HTML_POLICY


def test_app_index_escapes_a_script_title(client: FlaskClient) -> None:
    html = client.get("/").get_data(as_text=True)
    assert "Breaking " + ESCAPED_SCRIPT + " news" in html
    assert SCRIPT not in html
    assert "<script" not in html.lower()


# --- the real servers, over raw sockets -------------------------------------------------------------


@dataclass(frozen=True)
class RawAnswer:
    """What came back on the socket: an HTTP answer, or a description of its absence."""

    raw: bytes
    status: int | None  # None: no status line came back
    body: bytes
    ending: str  # "complete", "closed", "reset" or "timed out"

    def describe(self) -> str:
        if self.status is None:
            return f"no answer ({self.ending} after {len(self.raw)} bytes: {self.raw[:80]!r})"
        head = self.raw.split(b"\r\n\r\n", 1)[0]
        return f"{head.decode('latin-1')!r} + {len(self.body)} body bytes ({self.ending})"


def wire(
    target: bytes,
    method: bytes = b"GET",
    headers: Sequence[bytes] = (),
    host: bytes | None = b"127.0.0.1",
    body: bytes = b"",
) -> bytes:
    """An HTTP/1.1 request exactly as given: nothing normalised, nothing encoded."""
    lines = [method + b" " + target + b" HTTP/1.1"]
    if host is not None:
        lines.append(b"Host: " + host)
    lines += headers
    if body:
        lines += [b"Content-Type: application/x-www-form-urlencoded", b"Content-Length: %d" % len(body)]
    lines.append(b"Connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _complete(buffer: bytes) -> bool:
    head, separator, body = buffer.partition(b"\r\n\r\n")
    if not separator:
        return False
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if len(status) > 1 and status[1] in (b"204", b"304"):
        return True
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length" and value.strip().isdigit():
            return len(body) >= int(value)
    return False  # read to the end of the connection


def exchange(port: int, request: bytes, half_close: bool = False, timeout: float = 10) -> RawAnswer:
    """Sends `request` on a fresh connection and reads one answer (bounded in time and size)."""
    buffer = b""
    ending = "timed out"
    deadline = time.monotonic() + timeout
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        try:
            sock.sendall(request)
            if half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before reading all of it: read the answer
        while time.monotonic() < deadline and len(buffer) < 8 * 1024 * 1024:
            if _complete(buffer):
                ending = "complete"
                break
            sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                chunk = sock.recv(65536)
            except TimeoutError:
                break
            except ConnectionResetError:
                ending = "reset"
                break
            if not chunk:
                ending = "complete" if _complete(buffer) else "closed"
                break
            buffer += chunk
    status_line = buffer.split(b"\r\n", 1)[0].split(b" ", 2)
    has_status = status_line[0].startswith(b"HTTP/") and len(status_line) > 1 and status_line[1].isdigit()
    return RawAnswer(
        raw=buffer,
        status=int(status_line[1]) if has_status else None,
        body=buffer.partition(b"\r\n\r\n")[2],
        ending=ending,
    )


@dataclass(frozen=True)
class Deviation:
    """A real server's known answer where the RFCs want a 4xx: `served` (the ordinary
    feed) or `silent` (the connection closes with no answer)."""

    answer: str
    detail: str


# What the servers were seen to do (granian 2.8.9, gunicorn 27.0.1); each such case still
# checks every safe property, and a 4xx would pass as well.
SERVER_DEVIATIONS = {
    ("granian", "host-missing"): Deviation(
        "served", "answers an HTTP/1.1 request without Host (RFC 9112 §3.2: 400)"
    ),
    ("gunicorn", "host-missing"): Deviation(
        "served", "answers an HTTP/1.1 request without Host (RFC 9112 §3.2: 400)"
    ),
    ("granian", "half-close"): Deviation(
        "silent", "closes without answering a complete request once the client shuts its sending side"
    ),
}


TRAVERSAL_CASES = [
    *[(target, wire(target.encode("latin-1"))) for target in TRAVERSALS],
    (ABSOLUTE_FORM, wire(ABSOLUTE_FORM.encode())),
    ("raw-script-path", wire(b"/" + SCRIPT.encode())),
]
SIZE_CASES = [
    *[(f"path-{name}", wire(b"/" + b"a" * size)) for name, size in LONG_PATHS.items()],
    ("header-64k", wire(b"/rss.xml", headers=[b"X-Big: " + REFLECT.encode() + b"a" * 64 * 1024])),
    ("500-headers", wire(b"/rss.xml", headers=[b"X-H%d: %s" % (n, REFLECT.encode()) for n in range(500)])),
]
METHOD_CASES = [
    *[
        (
            f"{method_id(method)}-{path}",
            wire(
                path.encode(),
                method=method.encode(),
                headers=[b"X-Probe: " + REFLECT.encode()],
                body=FORM_BODY if method in ("POST", "PUT", "PATCH") else b"",
            ),
        )
        for method in METHODS
        for path in ROUTES
    ],
    ("CONNECT-authority-form", wire(b"127.0.0.1:80", method=b"CONNECT")),
]
MALFORMED_CASES = [
    ("garbage", b"\x00\x01\x02 garbage \xff\r\n\r\n"),
    ("no-version", b"GET /rss.xml\r\n\r\n"),
    ("only-method", b"GET\r\n\r\n"),
    ("http-9.9", b"GET /rss.xml HTTP/9.9\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    ("double-spaces", b"GET  /rss.xml  HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    ("tabs", b"GET\t/rss.xml\tHTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    ("extra-token", b"GET /rss.xml HTTP/1.1 extra\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"),
    ("control-in-target", wire(b"/rss.xml\x01")),
    ("nul-in-target", wire(b"/rss.xml\x00")),
    ("bytes-in-target", wire(b"/\xff\xfe")),
    ("header-without-colon", wire(b"/rss.xml", headers=[b"NoColonHere"])),
    ("space-before-colon", wire(b"/rss.xml", headers=[b"X-Probe : " + REFLECT.encode()])),
    ("obs-fold", wire(b"/rss.xml", headers=[b"X-Probe: a", b" " + REFLECT.encode()])),
    (
        "two-content-lengths",
        b"POST /rss.xml HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n"
        b"Connection: close\r\n\r\nabcd",
    ),
    (
        "negative-content-length",
        b"POST /rss.xml HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: -1\r\nConnection: close\r\n\r\n",
    ),
    (
        "content-length-and-chunked",
        b"POST /rss.xml HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 4\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n0\r\n\r\n",
    ),
]
HOST_CASES = [
    ("host-missing", wire(b"/rss.xml", host=None)),
    ("host-64k", wire(b"/rss.xml", host=REFLECT.encode() + b"h" * 64 * 1024)),
    ("host-twice", wire(b"/rss.xml", headers=[b"Host: " + REFLECT.encode()])),
]


@dataclass
class Served:
    kind: str
    server: Server
    feed: bytes  # the body of GET /rss.xml: the one 200 a deviation may answer

    def check(self, case_id: str, request: bytes, half_close: bool = False) -> None:
        log_before = len(self.server.errors())
        answer = exchange(self.server.port, request, half_close=half_close)
        what = f"{self.kind}: {case_id}: {answer.describe()}"
        for leak in LEAKS:
            assert leak not in answer.raw, f"{what}: the answer contains {leak!r}"
        if answer.status != 200:
            assert SCRIPT.encode() not in answer.raw, f"{what}: the answer contains {SCRIPT}"
        assert REFLECT.encode() not in answer.raw, f"{what}: the answer reflects the request"
        assert answer.status is None or answer.status < 500, what
        assert answer.ending != "timed out", what
        deviation = SERVER_DEVIATIONS.get((self.kind, case_id))
        if answer.status is not None and 400 <= answer.status < 500:
            pass
        elif deviation is not None and deviation.answer == "served":
            assert (answer.status, answer.body) == (200, self.feed), f"{what} ({deviation.detail})"
        elif deviation is not None and deviation.answer == "silent":
            assert answer.status is None and answer.raw == b"", f"{what} ({deviation.detail})"
        else:
            pytest.fail(f"{what}: expected a 4xx")
        status, _, body = self.server.request("/rss.xml")
        assert (status, body) == (200, self.feed), f"{self.kind}: GET /rss.xml after {case_id}: {status}"
        assert "Traceback" not in self.server.errors()[log_before:], self.server.errors()[log_before:]


@pytest.fixture(scope="module", params=["granian", "gunicorn"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    kind: str = request.param
    workdir = tmp_path_factory.mktemp(f"security-{kind}")
    content = workdir / "content"
    content.mkdir()
    (content / "harbour.txt").write_text(post_text(extra="tags: [Gardening]"))
    (content / "nasty.txt").write_text(post_text(title=NASTY_TITLE, date="1602800000"))
    (workdir / "secret.txt").write_text(CANARY)
    server = Server(workdir, content, via_cli=kind == "granian", state_dir=str(workdir / "state"))
    try:
        server.wait_until_ready()
        # granian loses a SIGTERM that reaches a worker still loading the app, and then
        # never exits: let every worker finish starting before any test can end the run.
        time.sleep(1.5)
        status, _, feed = server.request("/rss.xml")
        assert status == 200
        yield Served(kind, server, feed)
    finally:
        exit_status = stop_server(server)
    assert exit_status == 0, server.errors()[-3000:]


@pytest.mark.parametrize(("case_id", "request_bytes"), TRAVERSAL_CASES, ids=[c[0] for c in TRAVERSAL_CASES])
def test_server_path_traversal_is_4xx(served: Served, case_id: str, request_bytes: bytes) -> None:
    served.check(case_id, request_bytes)


@pytest.mark.parametrize(("case_id", "request_bytes"), SIZE_CASES, ids=[c[0] for c in SIZE_CASES])
def test_server_oversized_request_is_4xx(served: Served, case_id: str, request_bytes: bytes) -> None:
    served.check(case_id, request_bytes)


@pytest.mark.parametrize(("case_id", "request_bytes"), METHOD_CASES, ids=[c[0] for c in METHOD_CASES])
def test_server_odd_method_is_4xx(served: Served, case_id: str, request_bytes: bytes) -> None:
    served.check(case_id, request_bytes)


@pytest.mark.parametrize(("case_id", "request_bytes"), MALFORMED_CASES, ids=[c[0] for c in MALFORMED_CASES])
def test_server_malformed_request_is_4xx(served: Served, case_id: str, request_bytes: bytes) -> None:
    served.check(case_id, request_bytes)


@pytest.mark.parametrize(("case_id", "request_bytes"), HOST_CASES, ids=[c[0] for c in HOST_CASES])
def test_server_missing_or_odd_host_is_4xx(served: Served, case_id: str, request_bytes: bytes) -> None:
    served.check(case_id, request_bytes)


def test_server_request_then_half_close(served: Served) -> None:
    """`printf 'GET ...' | nc -N`: the client shuts its sending side after a whole request."""
    served.check("half-close", wire(b"/nope"), half_close=True)


def test_server_index_escapes_a_script_title_with_the_exact_csp(served: Served) -> None:
    status, headers, body = served.server.request("/")
    assert status == 200
    assert headers["content-security-policy"] == HTML_POLICY
    assert headers["x-content-type-options"] == "nosniff"
    html = body.decode("utf-8")
    assert "Breaking " + ESCAPED_SCRIPT + " news" in html
    assert "<script" not in html.lower()


# --- the supply chain ---------------------------------------------------------------------------------

PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;\\]+)")


def test_requirements_lock_pins_every_runtime_dependency_with_hashes() -> None:
    """requirements.txt must pin each [project] dependency of pyproject.toml at a version
    its range allows, and carry hashes for every pin."""
    lock = (REPO / "requirements.txt").read_text()
    pins: dict[str, str] = {}
    hashed: set[str] = set()
    current = ""
    for line in lock.splitlines():
        if match := PIN.match(line):
            current = canonicalize_name(match[1])
            pins[current] = match[2]
        elif line.strip().startswith("--hash=sha256:") and current:
            hashed.add(current)
    problems = [f"{name} has no --hash" for name in sorted(set(pins) - hashed)]
    for raw in tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]:
        requirement = Requirement(raw)
        if requirement.marker is not None and not requirement.marker.evaluate():
            continue
        pinned = pins.get(canonicalize_name(requirement.name))
        if pinned is None:
            problems.append(f"{requirement.name} is not pinned")
        elif not requirement.specifier.contains(pinned, prereleases=True):
            problems.append(f"{requirement.name}=={pinned} is outside {raw!r}")
    assert problems == [], (
        f"requirements.txt is out of date: {problems}; regenerate it with the command in its header"
    )
