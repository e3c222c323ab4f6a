"""The builder in a process of its own, against the real service: `feeds serve` runs
the builder (`python -m feeds.builder`) beside granian or gunicorn, restarts it when it
dies, stops everything on SIGTERM, and the web workers never load the build code."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeds import builder
from feeds.config import Settings
from feeds.published import PublishedStore
from feeds.supervisor import SUPERVISOR_ENV
from feeds.watcher import Watcher, WatcherService

from conftest import WritePost, no_wait, post_text
from server import Server, descendants, free_port, parent_of, processes, service_env

# What a web worker must never import (plan.md): the build code and its libraries.
BUILD_MODULES = (
    *("feeds.build", "feeds.pipeline", "feeds.posts", "feeds.markdown", "feeds.xmlfeeds", "feeds.scan"),
    *("feeds.watcher", "feeds.store", "feedgen", "lxml", "markdown_it", "frontmatter", "yaml", "apscheduler"),
)
LXML_LIBRARY = "lxml/etree."  # the shared object lxml's etree is, in /proc/<pid>/maps


@pytest.fixture(params=["granian", "gunicorn"])
def kind(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def running(tmp_path: Path, write_post: WritePost, content_dir: Path, kind: str) -> Iterator[Server]:
    write_post("first.txt", post_text(title="First", extra="tags: Boats"))
    server = Server(tmp_path, content_dir, via_cli=kind == "granian", state_dir=str(tmp_path / "state"))
    try:
        server.wait_until_ready()
        yield server
    finally:
        server.stop()


def web_workers(server: Server) -> list[int]:
    """The worker processes of the HTTP server that `feeds serve` started."""
    (http_server,) = [pid for pid, command in server.children().items() if "feeds.builder" not in command]
    return [pid for pid in processes() if parent_of(pid) == http_server]


def mapped(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def nice_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[16])


def alive(pids: set[int]) -> set[int]:
    return {pid for pid in pids if parent_of(pid) is not None}


def assert_all_stop(pids: set[int], within: float = 20) -> None:
    """Every process of `pids` exits within `within` seconds; any left is killed."""
    deadline = time.monotonic() + within
    while alive(pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        assert alive(pids) == set()
    finally:
        for pid in alive(pids):
            os.kill(pid, signal.SIGKILL)


def test_web_workers_load_no_build_code_and_the_builder_runs_below_them(running: Server) -> None:
    assert running.request("/tags/boats/rss.xml")[0] == 200
    workers = web_workers(running)
    assert len(workers) == 2
    builder = running.builder_pid()
    assert LXML_LIBRARY in mapped(builder)  # the builder does load it: the check can fail
    for worker in workers:
        assert LXML_LIBRARY not in mapped(worker)
    # The first build into an empty state directory runs before the builder lowers its
    # priority (nothing to serve yet): the build is published a moment before.
    deadline = time.monotonic() + 5
    while nice_of(builder) <= max(nice_of(worker) for worker in workers) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert all(nice_of(builder) > nice_of(worker) for worker in workers)


def test_importing_the_wsgi_module_loads_no_build_code(tmp_path: Path, content_dir: Path) -> None:
    env = service_env(
        tmp_path, content_dir, state_dir=str(tmp_path / "state"), base_url="https://example.com"
    )
    code = f"import sys, feeds.wsgi; print([m for m in {BUILD_MODULES!r} if m in sys.modules])"
    shown = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip() == "[]"


def test_a_killed_builder_is_restarted_and_publishing_resumes(running: Server, write_post: WritePost) -> None:
    killed = running.builder_pid()
    os.kill(killed, signal.SIGKILL)
    write_post("second.txt", post_text(title="Written after the kill", date="1700000000"))
    running.wait_for("/rss.xml", "Written after the kill", timeout=20)
    assert running.builder_pid() != killed
    assert f"the builder (pid {killed}) exited with status -9; starting it again" in running.errors()
    health = json.loads(running.request("/healthz")[2])
    assert health["builder"] == "running"


def test_sigterm_stops_the_builder_and_the_workers_with_exit_0(running: Server) -> None:
    everything = descendants(running.process.pid)
    assert len(everything) >= 4  # builder, server, two workers
    assert running.stop() == 0
    deadline = time.monotonic() + 5
    while alive(everything) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert alive(everything) == set()


def test_two_instances_over_one_state_dir_have_one_polling_builder(
    tmp_path: Path, write_post: WritePost, content_dir: Path
) -> None:
    write_post("first.txt", post_text(title="First"))
    state = str(tmp_path / "state")
    servers = [Server(tmp_path, content_dir, workers=1, via_cli=True, state_dir=state) for _ in range(2)]
    try:
        for server in servers:
            server.wait_until_ready()
            assert json.loads(server.request("/healthz")[2])["builder"] == "running"
        write_post("second.txt", post_text(title="Seen by both", date="1700000000"))
        for server in servers:
            server.wait_for("/rss.xml", "Seen by both")
        assert all(len(server.children()) == 2 for server in servers)  # a builder each, waiting or not
        # (Read before the stop: once the first instance stops, the other builder takes over.)
        assert sum(server.errors().count("is the watcher of") for server in servers) == 1
    finally:
        for server in servers:
            server.stop()


def test_a_builder_that_keeps_dying_stops_the_service_with_a_clear_error(
    tmp_path: Path, write_post: WritePost, content_dir: Path
) -> None:
    write_post("first.txt", post_text(title="First"))
    server = Server(tmp_path, content_dir, workers=1, via_cli=True, state_dir=str(tmp_path / "state"))
    try:
        server.wait_until_ready()
        everything = descendants(server.process.pid)
        killed: set[int] = set()
        deadline = time.monotonic() + 30
        while server.process.poll() is None and time.monotonic() < deadline:
            builders = {pid for pid, command in server.children().items() if "feeds.builder" in command}
            for builder in builders - killed:
                os.kill(builder, signal.SIGKILL)
                killed.add(builder)
            time.sleep(0.01)
        assert server.process.wait(20) == 1
    finally:
        server.stop()
    assert len(killed) == 5  # the default policy: 5 deaths within 60 s
    assert (
        "feeds: the builder exited 5 times within 60 s (last status -9); "
        "stopping the server rather than serve feeds that no longer update"
    ) in server.errors().splitlines()
    assert alive(everything) == set()


def test_gunicorn_alone_says_there_is_no_builder_until_one_runs(
    tmp_path: Path, write_post: WritePost, content_dir: Path
) -> None:
    """Run directly, gunicorn starts no builder: it says so, and /healthz shows it."""
    write_post("first.txt", post_text(title="First"))
    port = free_port()
    env = service_env(
        tmp_path,
        content_dir,
        state_dir=str(tmp_path / "state"),
        base_url="https://example.com",
        poll_interval="0.2",
        PORT=str(port),
        WEB_CONCURRENCY="1",
    )
    argv = [sys.executable, "-m", "gunicorn", "-c", "python:feeds.gunicorn_config", "feeds.web:create_app()"]
    log = tmp_path / "gunicorn.log"
    with log.open("wb") as errors:
        gunicorn = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=errors)
    builder = None
    try:
        client = Server.__new__(Server)
        client.port = port
        deadline = time.monotonic() + 20
        while "no builder runs beside this gunicorn" not in log.read_text():
            assert gunicorn.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.05)
        status, _, body = client.request("/healthz")
        assert (status, json.loads(body)["builder"]) == (503, "stopped")
        builder = subprocess.Popen(
            [sys.executable, "-m", "feeds.builder"], env=env, stderr=subprocess.DEVNULL
        )
        client.wait_for("/rss.xml", "<title>First</title>", timeout=20)
        assert json.loads(client.request("/healthz")[2])["builder"] == "running"
        builder.send_signal(signal.SIGTERM)
        assert builder.wait(20) == 0
        assert json.loads(client.request("/healthz")[2])["builder"] == "stopped"
    finally:
        for process in (builder, gunicorn):
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
                process.wait(20)


def test_a_cold_start_publishes_the_site_feeds_first(
    write_post: WritePost, service_settings: Settings, store: PublishedStore
) -> None:
    write_post("one.txt", post_text(title="One", extra="tags: Boats"))
    # The builder lowers its priority here: the rest of the first build yields to workers.
    published_then: list[int] = []
    watcher = Watcher(
        service_settings,
        store,
        settle_ns=0,
        sleep=no_wait,
        site_first=True,
        after_site_first=lambda: published_then.append(len(list(store.manifests.iterdir()))),
    )
    reported: list[object] = []
    real_write_health = store.write_health
    store.write_health = lambda health: (reported.append(health["generation"]), real_write_health(health))  # type: ignore[method-assign]
    assert watcher.poll() is True
    first, second = sorted(path.name.removesuffix(".json") for path in store.manifests.iterdir())
    assert reported == [first, second]  # /healthz names each generation as it goes into service
    assert published_then == [1]
    site = {"rss.xml", "atom.xml", "feed.json", "feed.html", "feed.xsl", "index.html"}
    first_files = store.read_manifest(first)["files"]
    assert set(first_files) == site
    second_files = store.read_manifest(second)["files"]
    assert site < set(second_files) and {"feeds.opml", "tags/boats/rss.xml"} <= set(second_files)
    assert store.current_name() == second
    assert first_files["rss.xml"]["digest"] == second_files["rss.xml"]["digest"]
    assert b"<title>One</title>" in store.read_blob(first_files["rss.xml"]["digest"])
    # Kept from a previous run: no site-only generation before the whole one.
    write_post("two.txt", post_text(title="Two", date="1700000000"))
    again = Watcher(service_settings, store, settle_ns=0, sleep=no_wait, site_first=True)
    assert again.poll() is True
    assert store.current_name() is not None and store.current_name() != second
    assert set(store.read_manifest(store.current_name())["files"]) > site


def test_everything_a_killed_supervisor_started_stops(running: Server) -> None:
    """A builder left behind would keep the lease, and the next `feeds serve` over the
    same state directory could never build; a server left behind would go on answering
    with feeds nobody updates, on a port a new `feeds serve` shares (SO_REUSEPORT)."""
    running.builder_pid()
    everything = descendants(running.process.pid)
    os.kill(running.process.pid, signal.SIGKILL)
    running.process.wait()
    assert_all_stop(everything)


def test_a_server_that_dies_takes_its_workers_and_the_service_down(running: Server) -> None:
    """With its master killed, granian's workers went on answering without a builder,
    and gunicorn's held the port against the next start."""
    builder = running.builder_pid()
    server = next(pid for pid in running.children() if pid != builder)
    everything = descendants(running.process.pid)
    os.kill(server, signal.SIGKILL)
    assert running.process.wait(30) != 0
    assert_all_stop(everything)


PARSING_PROCESS_CHECK = """
import signal, sys
from pathlib import Path
import feeds.pipeline
from feeds.config import load_settings
from feeds.scan import scan

signal.signal(signal.SIGTERM, lambda signum, frame: None)  # as the builder's: it only notes
real_read_chunk = feeds.pipeline._read_chunk

def read_chunk(settings, files):
    # Runs in a parsing process, forked after this patch.
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        raise RuntimeError("a parsing process kept the handler of the process it was forked from")
    return real_read_chunk(settings, files)

feeds.pipeline._read_chunk = read_chunk
settings = load_settings(Path(sys.argv[1]), {}, {"content_dir": sys.argv[2]})
files = scan(settings.content_dir, settings.extensions).files
results = feeds.pipeline.read_posts(files, settings)
print(len(results))
"""


def test_parsing_processes_die_of_the_signal_that_ends_their_pool(tmp_path: Path, content_dir: Path) -> None:
    """A pool ends its processes with SIGTERM. Forked from the builder, whose handler
    only notes the signal, a process kept waiting and the builder waited on it for ever
    (a cold start hung at 503); they must take the default action."""
    import feeds.pipeline

    count = max(feeds.pipeline.PARALLEL_MIN_FILES, 2 * feeds.pipeline.CHUNK_FILES)
    for n in range(count):
        (content_dir / f"p{n}.txt").write_text(post_text(title=f"Post {n}", date=str(1600000000 + n)))
    (tmp_path / "empty.toml").write_text("")
    shown = subprocess.run(
        [sys.executable, "-c", PARSING_PROCESS_CHECK, str(tmp_path / "empty.toml"), str(content_dir)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr[-2000:]
    assert shown.stdout.strip() == str(count)


def test_the_first_build_over_a_kept_state_dir_runs_before_any_other_thread(
    service_settings: Settings, write_post: WritePost, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A kept state dir: something is published already. The builder's first build must
    # still run while the process has one thread, so that it may fork (feeds.parallel).
    write_post("a.txt", post_text(title="A"))
    Watcher(service_settings, PublishedStore(Path(service_settings.state_dir)), sleep=no_wait).poll()
    monkeypatch.setenv("FEEDS_STATE_DIR", str(service_settings.state_dir))
    monkeypatch.setenv("FEEDS_CONTENT_DIR", str(service_settings.content_dir))
    monkeypatch.setenv(SUPERVISOR_ENV, str(os.getpid()))  # so that the orphan watch starts
    monkeypatch.setattr(builder.os, "nice", lambda increment: 0)  # not the test process
    ticks: list[int] = []  # the threads of this process at each tick
    monkeypatch.setattr(WatcherService, "tick", lambda self: ticks.append(threading.active_count()))
    monkeypatch.setattr(WatcherService, "run", lambda self, stop: stop.set())
    alone = threading.active_count()
    assert builder.main() == 0
    assert ticks == [alone]
