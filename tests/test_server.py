"""End to end: the real gunicorn server with two workers over a temporary content
directory, on a free loopback port."""

from __future__ import annotations

import gzip
import json
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest

from conftest import WritePost, post_text
from feedcheck import parsed
from server import REPO, Server, free_port, service_env


@pytest.fixture
def server(tmp_path: Path, content_dir: Path) -> Iterator[Server]:
    running = Server(tmp_path, content_dir, state_dir=str(tmp_path / "state"))
    yield running
    running.stop()


def etag_from_every_worker(server: Server, path: str, etag: str, workers: int = 2) -> set[str]:
    """Requests `path` until each worker has answered it with `etag` (bounded)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        status, headers, _ = server.request(path)
        assert (status, headers["etag"]) == (200, etag)
        seen = server.workers_seen(path, etag)
        if len(seen) >= workers:
            return seen
    raise AssertionError(f"only workers {server.workers_seen(path, etag)} answered {etag}")


def test_the_service_end_to_end(server: Server, write_post: WritePost, content_dir: Path) -> None:
    write_post("first.txt", post_text(title="First post", date="1600000000"))
    server.wait_until_ready()
    status, headers, body = server.request("/rss.xml")
    assert status == 200
    assert headers["content-type"] == "application/rss+xml; charset=utf-8"
    assert [e.title for e in parsed(body).entries] == ["First post"]
    first_etag = headers["etag"]
    status, headers, body = server.request("/rss.xml", headers={"If-None-Match": first_etag})
    assert (status, body, headers["etag"]) == (304, b"", first_etag)
    # When the bytes were published (seconds ago), not the post's date of 2020.
    assert abs(parsedate_to_datetime(headers["last-modified"]).timestamp() - time.time()) < 60
    assert headers["cache-control"] == "public, max-age=300, stale-while-revalidate=60, stale-if-error=86400"

    write_post("second.txt", post_text(title="Second post", date="1600000500"))
    status, headers, body = server.wait_for("/rss.xml", "Second post")
    second_etag = headers["etag"]
    assert second_etag != first_etag
    assert [e.title for e in parsed(body).entries] == ["Second post", "First post"]
    assert len(etag_from_every_worker(server, "/rss.xml", second_etag)) == 2
    status, _, _ = server.request("/rss.xml", headers={"If-None-Match": first_etag})
    assert status == 200

    status, headers, body = server.request("/rss.xml", headers={"Accept-Encoding": "gzip"})
    assert headers["content-encoding"] == "gzip"
    assert headers["vary"] == "Accept, Accept-Encoding, Sec-Fetch-Dest, Sec-Fetch-Mode"
    assert [e.title for e in parsed(gzip.decompress(body)).entries] == ["Second post", "First post"]

    # A broken save of the second post: the feed goes back to the first post alone.
    write_post("second.txt", "---\ntitle: Second post\ndate: [not, a, date]\n---\nHalf written")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        status, headers, body = server.request("/rss.xml")
        if [e.title for e in parsed(body).entries] == ["First post"]:
            break
        time.sleep(0.05)
    assert [e.title for e in parsed(body).entries] == ["First post"]
    assert headers["etag"] == first_etag  # the same content gives the same bytes as before
    status, _, health_body = server.request("/healthz")
    health = json.loads(health_body)
    assert status == 200 and health["status"] == "ok"
    assert (health["posts_used"], health["posts_skipped"], health["error"]) == (1, 1, None)
    assert "skipped" not in health and "second.txt" not in health_body.decode()  # in the log only

    assert server.stop() == 0
    log = server.errors()
    assert "Traceback" not in log
    assert "build: 1 changed, 0 removed, 2 files, 1 posts used" in log
    assert "skipped second.txt: date: expected a date, got list" in log


def test_two_servers_on_two_copies_agree_on_etags(
    tmp_path: Path, write_post: WritePost, content_dir: Path
) -> None:
    for n in range(3):
        write_post(f"p{n}.txt", post_text(title=f"Post {n}", date=str(1_600_000_000 + n)))
    copy = tmp_path / "copy"
    shutil.copytree(content_dir, copy)
    servers = [Server(tmp_path, content_dir, workers=1), Server(tmp_path, copy, workers=1)]
    try:
        for server in servers:
            server.wait_until_ready()
        for path in ("/rss.xml", "/atom.xml", "/feed.json", "/"):
            for encoding in ("identity", "gzip"):
                answers = [s.request(path, headers={"Accept-Encoding": encoding}) for s in servers]
                assert answers[0][1]["etag"] == answers[1][1]["etag"]
                assert answers[0][2] == answers[1][2]
    finally:
        for server in servers:
            server.stop()


def test_the_procfile_server(tmp_path: Path, write_post: WritePost) -> None:
    """`feeds serve` as the Procfile runs it (granian, two workers): one watcher, fresh
    feeds, the same ETag from every answer, and a clean exit on SIGTERM."""
    procfile = (REPO / "Procfile").read_text().strip()
    assert procfile == "web: exec python -m feeds.cli serve --host 0.0.0.0"
    write_post("first.txt", post_text(title="Served"))
    server = Server(tmp_path, tmp_path / "content", via_cli=True, state_dir=str(tmp_path / "state"))
    try:
        server.wait_until_ready()
        status, headers, body = server.request("/rss.xml", headers={"Accept-Encoding": "gzip"})
        assert status == 200 and b"<title>Served</title>" in gzip.decompress(body)
        status, _, _ = server.request(
            "/rss.xml", headers={"Accept-Encoding": "gzip", "If-None-Match": headers["etag"]}
        )
        assert status == 304
        write_post("second.txt", post_text(title="Also served", date="1700000000"))
        _, headers, _ = server.wait_for("/rss.xml", "Also served")
        etags = {server.request("/rss.xml")[1]["etag"] for _ in range(40)}
        assert etags == {headers["etag"]}
        status, headers, body = server.request("/feed.json", method="HEAD")
        assert (status, body, headers["content-type"]) == (200, b"", "application/feed+json; charset=utf-8")
        assert int(headers["content-length"]) > 0
    finally:
        exit_status = server.stop()
    assert exit_status == 0
    assert server.errors().count("is the watcher of") == 1


def listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on `port`, from the kernel's tables
    (/proc/net/tcp and tcp6: hex address:port, state 0A is LISTEN)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hex_port = local.rpartition(":")
            if state == "0A" and int(hex_port, 16) == port:
                found.add(address)
    return found


def test_gunicorn_with_the_config_alone_listens_on_loopback_only(tmp_path: Path, content_dir: Path) -> None:
    """The README's plain gunicorn command, without --bind, must not open every interface."""
    port = free_port()
    env = service_env(
        tmp_path, content_dir, state_dir=str(tmp_path / "state"), PORT=str(port), WEB_CONCURRENCY="1"
    )
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:feeds.gunicorn_config", "feeds.web:create_app()"]
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as errors:
        process = subprocess.Popen(argv, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=errors)
    try:
        deadline = time.monotonic() + 20
        while "Listening at" not in log.read_text() and time.monotonic() < deadline:
            assert process.poll() is None, log.read_text()
            time.sleep(0.05)
        assert f"Listening at: http://127.0.0.1:{port} " in log.read_text()
        assert listening_addresses(port) == {"0100007F"}  # 127.0.0.1, nothing else
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(20) == 0


def test_configuration_error_stops_the_server_with_one_line(tmp_path: Path, content_dir: Path) -> None:
    server = Server(tmp_path, content_dir, base_url="ftp://nowhere")
    assert server.process.wait(20) == 2
    assert server.errors().strip().splitlines() == [
        "feeds: configuration error: base_url: must be an absolute http(s) URL such as "
        "https://example.com, got 'ftp://nowhere'"
    ]


def test_the_procfile_server_exits_on_sigterm_right_after_it_is_ready(
    tmp_path: Path, write_post: WritePost
) -> None:
    """A SIGTERM that reaches a worker while it still imports the app used to be lost,
    and the server never exited."""
    write_post("first.txt", post_text(title="Served"))
    for _ in range(4):
        server = Server(tmp_path, tmp_path / "content", via_cli=True, state_dir=str(tmp_path / "state"))
        server.wait_until_ready()
        assert server.stop() == 0
