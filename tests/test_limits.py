"""The servers' request limits, over raw sockets: a 64 KB header and a doubled Host get a
4xx from `feeds serve` (granian, the Procfile's server) and from gunicorn, while requests
with headers of ordinary sizes are served. tests/test_buildpack.py sends the same two
requests to the Procfile's own command line."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from test_security import exchange, wire

from feeds.cli import MAX_REQUEST_HEAD
from feeds.hostcheck import SingleHost

from conftest import post_text
from server import Server
from stress import stop_server

BIG_HEADER = wire(b"/rss.xml", headers=[b"X-Big: " + b"a" * 64 * 1024])
TWO_HOSTS = wire(b"/rss.xml", headers=[b"Host: other.example"])
# What each server answers to those (RFC 9110 §15.5.1 and RFC 6585 §5).
EXPECTED = {"granian": {"big": 431, "twice": 400}, "gunicorn": {"big": 431, "twice": 400}}


@dataclass(frozen=True)
class Running:
    kind: str
    server: Server


@pytest.fixture(scope="module", params=["granian", "gunicorn"])
def running(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    kind: str = request.param
    workdir = tmp_path_factory.mktemp(f"limits-{kind}")
    content = workdir / "content"
    content.mkdir()
    (content / "harbour.txt").write_text(post_text(title="Within limits"))
    server = Server(workdir, content, workers=1, via_cli=kind == "granian", state_dir=str(workdir / "state"))
    try:
        server.wait_until_ready()
        time.sleep(1)  # granian loses a SIGTERM that reaches a worker still starting
        yield Running(kind, server)
    finally:
        exit_status = stop_server(server)
    assert exit_status == 0, server.errors()[-2000:]


def test_a_64_kb_header_is_refused(running: Running) -> None:
    answer = exchange(running.server.port, BIG_HEADER)
    assert answer.status == EXPECTED[running.kind]["big"], answer.describe()
    assert b"Within limits" not in answer.raw
    assert running.server.request("/rss.xml")[0] == 200


def test_two_host_headers_are_refused(running: Running) -> None:
    answer = exchange(running.server.port, TWO_HOSTS)
    assert answer.status == EXPECTED[running.kind]["twice"], answer.describe()
    assert b"Within limits" not in answer.raw and b"other.example" not in answer.raw
    assert running.server.request("/rss.xml")[0] == 200


@pytest.mark.parametrize(
    "headers",
    [
        [b"X-Long: " + b"a" * 7000],  # under gunicorn's 8190 bytes a field
        [b"X-H%d: %s" % (n, b"b" * 200) for n in range(90)],  # 90 fields, 19 KB in all
    ],
    ids=["one-7-kb-field", "90-fields"],
)
def test_ordinary_header_sizes_are_served(running: Running, headers: list[bytes]) -> None:
    request = wire(b"/rss.xml", headers=headers)
    assert len(request) < MAX_REQUEST_HEAD
    answer = exchange(running.server.port, request)
    assert answer.status == 200, answer.describe()
    assert b"Within limits" in answer.body


def test_one_host_passes_and_a_merged_one_is_a_400() -> None:
    """granian hands two Host lines to the app as one value joined by ","."""
    calls: list[str] = []

    def app(environ: dict[str, str], start_response: object) -> list[bytes]:
        calls.append(environ.get("HTTP_HOST", ""))
        return [b"app"]

    statuses: list[str] = []
    guarded = SingleHost(app)
    for host in ("example.com", "example.com:8000", "[::1]:8000", ""):
        assert guarded({"HTTP_HOST": host}, lambda status, headers: statuses.append(status)) == [b"app"]
    assert calls == ["example.com", "example.com:8000", "[::1]:8000", ""]
    body = guarded({"HTTP_HOST": "example.com,evil.example"}, lambda status, headers: statuses.append(status))
    assert statuses == ["400 Bad Request"]
    assert b"evil.example" not in b"".join(body)
    assert len(calls) == 4
