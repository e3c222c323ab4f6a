"""A fleet behind a real HTTP cache: Debian's nginx, configured by deploy/nginx.conf itself,
in front of three `feeds serve` instances, each over its own copy of one content folder
and with its own state directory, started at different moments (as dynos are).

Shown, in order: every instance serves the same bytes and ETags; under 64 concurrent
clients the instances see a few requests per URL per max_age, revalidations with
If-None-Match answered 304; SIGKILL of an instance under load fails no client request;
a new post written to every copy reaches the clients within max_age + 3 polls; and with
every instance gone, nginx serves the last bytes for stale-if-error seconds, then fails.

Short windows keep it quick: max_age 2 s, polls every second. Everything is on 127.0.0.1.
"""

from __future__ import annotations

import gzip
import http.client
import math
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from conftest import post_text
from server import HOST, REPO, Server, free_port
from stress import stop_server

MAX_AGE = 2  # seconds
STALE_WHILE_REVALIDATE = 1
STALE_IF_ERROR = 3
POLL = 1.0  # poll_interval, seconds
CLIENTS = 64
PATHS = (
    "/rss.xml",
    "/atom.xml",
    "/feed.json",
    "/tags/gardening/rss.xml",
    "/tags/gardening/atom.xml",
    "/archive/1/rss.xml",
    "/archive/1/atom.xml",
)
SHORT_LIVED = [path for path in PATHS if not path.startswith("/archive/1/")]  # served with max_age
GZIP = {"Accept-Encoding": "gzip"}
# granian's access log, one line per answer, with the request's If-None-Match.
ACCESS_FORMAT = "ACCESS|%(method)s|%(path)s|%(status)d|%(header{if-none-match})s"
NGINX_LINE = re.compile(
    r'"(?P<method>\S+) (?P<target>\S+) [^"]*" (?P<status>\d+) \d+ cache=(?P<cache>\S+) '
    r"upstream=(?P<upstream>.*?) upstream_status=(?P<upstream_status>.*?) etag=(?P<etag>\S+)$"
)


def nginx_binary() -> str:
    found = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
    if found is None:
        pytest.fail(
            "nginx is not installed: ./run.sh test installs Debian's package (apt-get install nginx-light)"
        )
    return found


def render(template: str, listen: str, ports: list[int], cache_dir: Path, access_log: Path) -> str:
    """deploy/nginx.conf with its placeholders filled in, as its header says."""
    text = (
        template.replace("@LISTEN@", listen)
        .replace("@SERVERS@", " ".join(f"server {HOST}:{port};" for port in ports))
        .replace("@CACHE_DIR@", str(cache_dir))
        .replace("@ACCESS_LOG@", str(access_log))
    )
    assert not re.search(r"@[A-Z_]+@", text), "a placeholder was left unfilled"
    return text


class Nginx:
    """nginx in the foreground with its own prefix: its main file sets only what belongs to
    this machine (pid, logs, temporary folders, user) and includes the shipped file."""

    def __init__(self, work: Path, ports: list[int]) -> None:
        self.work = work
        self.port = free_port()
        self.access_log = work / "access.log"
        (work / "temp").mkdir(parents=True)
        site = work / "feeds.conf"
        template = (REPO / "deploy" / "nginx.conf").read_text()
        site.write_text(render(template, f"{HOST}:{self.port}", ports, work / "cache", self.access_log))
        temp = work / "temp"
        paths = " ".join(f"{kind}_temp_path {temp}/{kind};" for kind in ("proxy", "fastcgi", "uwsgi", "scgi"))
        user = pwd.getpwuid(os.geteuid()).pw_name  # workers as the test's user, who owns the folders
        (work / "nginx.conf").write_text(
            f"daemon off;\nuser {user};\nworker_processes 2;\npid {work}/nginx.pid;\n"
            f"error_log {work}/error.log notice;\nevents {{ worker_connections 1024; }}\n"
            f"http {{\n    client_body_temp_path {temp}/body; {paths}\n    include {site};\n}}\n"
        )
        self.process = subprocess.Popen(
            [nginx_binary(), "-p", str(work), "-e", str(work / "error.log"), "-c", str(work / "nginx.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + 10
        while True:
            assert self.process.poll() is None, f"nginx exited: {self.errors()}"
            try:
                socket.create_connection((HOST, self.port), timeout=1).close()
                return
            except OSError:
                assert time.monotonic() < deadline, f"nginx not listening: {self.errors()}"
                time.sleep(0.05)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=15)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def log_lines(self, start: int = 0) -> list[re.Match[str]]:
        lines = self.access_log.read_text(errors="replace")[start:].splitlines()
        return [match for line in lines if (match := NGINX_LINE.search(line))]

    def log_size(self) -> int:
        return len(self.access_log.read_text(errors="replace")) if self.access_log.exists() else 0

    def errors(self) -> str:
        log = self.work / "error.log"
        return log.read_text(errors="replace")[-3000:] if log.exists() else ""

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)  # graceful
        return self.process.wait(20)


@dataclass
class Fleet:
    contents: list[Path]
    instances: list[Server]
    alive: list[bool]
    nginx: Nginx
    etags: dict[str, str]  # path -> the ETag of its gzip variant, before any change

    def origin_requests(self, marks: list[int]) -> list[tuple[str, int, str]]:
        """(path, status, If-None-Match) of every answer the instances logged past `marks`."""
        found = []
        for server, mark in zip(self.instances, marks, strict=True):
            text = server.output_log.read_text(errors="replace")[mark:]
            for line in text.splitlines():
                parts = line.split("|")
                if len(parts) == 5 and parts[0].endswith("ACCESS"):
                    found.append((parts[2], int(parts[3]), parts[4]))
        return found

    def marks(self) -> list[int]:
        return [len(server.output_log.read_text(errors="replace")) for server in self.instances]


def write_site(content: Path) -> None:
    for n in range(10):
        tags = "tags: [Gardening]" if n % 2 == 0 else "tags: [Workshops]"
        text = post_text(title=f"Fleet post {n}", date=str(1_700_000_000 + n * 3600), extra=tags)
        (content / f"post-{n:02d}.txt").write_text(text)


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    work = tmp_path_factory.mktemp("fleet")
    original = work / "content"
    original.mkdir()
    write_site(original)
    contents: list[Path] = []
    instances: list[Server] = []
    nginx: Nginx | None = None
    try:
        for index in range(3):
            home = work / f"instance-{index}"
            home.mkdir()
            contents.append(shutil.copytree(original, home / "content"))
            server = Server(
                home,
                contents[-1],
                workers=1,
                via_cli=True,
                extra_env={"GRANIAN_LOG_ACCESS_ENABLED": "true", "GRANIAN_LOG_ACCESS_FMT": ACCESS_FORMAT},
                state_dir=str(home / "state"),
                max_age=str(MAX_AGE),
                stale_while_revalidate=str(STALE_WHILE_REVALIDATE),
                stale_if_error=str(STALE_IF_ERROR),
                poll_interval=str(POLL),
                item_limit="3",
            )
            instances.append(server)
            server.wait_until_ready()
            time.sleep(1.2)  # each starts (and publishes) at its own moment
        nginx = Nginx(work / "nginx", [server.port for server in instances])
        etags = {path: instances[0].request(path, headers=GZIP)[1]["etag"] for path in PATHS}
        yield Fleet(contents, instances, [True] * 3, nginx, etags)
    finally:
        nginx_status = nginx.stop() if nginx is not None else 0
        statuses = [stop_server(server) for server in instances if server.process.poll() is None]
    assert nginx_status == 0
    assert set(statuses) <= {0}


@dataclass
class Tally:
    requests: int = 0
    failures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)


def hammer(
    port: int,
    target: Callable[[int, int], str],
    check: Callable[[str, int, dict[str, str]], str | None],
    seconds: float,
) -> Tally:
    """CLIENTS threads, each on its own keep-alive connection, requesting `target(client, n)`
    until `seconds` pass (and at most 100,000 requests each); every answer is checked."""
    tally = Tally()
    deadline = time.monotonic() + seconds

    def client(index: int) -> None:
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        for n in range(100_000):
            if time.monotonic() > deadline:
                break
            path = target(index, n)
            problem = None
            try:
                connection.request("GET", path, headers=GZIP)
                response = connection.getresponse()
                response.read()
                problem = check(path, response.status, {k.lower(): v for k, v in response.getheaders()})
            except (OSError, http.client.HTTPException) as error:
                problem = f"{type(error).__name__}: {error}"
                connection.close()
                connection = http.client.HTTPConnection(HOST, port, timeout=10)
            with tally.lock:
                tally.requests += 1
                if problem:
                    tally.failures.append(f"{path}: {problem}")
        connection.close()

    threads = [threading.Thread(target=client, args=(index,)) for index in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 30)
    assert not any(thread.is_alive() for thread in threads)
    return tally


def test_every_instance_serves_the_same_bytes_and_etags(fleet: Fleet) -> None:
    for path in PATHS:
        for headers in ({}, GZIP):
            answers = [server.request(path, headers=headers) for server in fleet.instances]
            assert [status for status, _, _ in answers] == [200, 200, 200], path
            assert len({body for _, _, body in answers}) == 1, f"{path} {headers}: bytes differ"
            assert len({h["etag"] for _, h, _ in answers}) == 1, f"{path} {headers}: ETags differ"
            status, through, body = fleet.nginx.get(path, headers)
            assert (status, through["etag"], body) == (200, answers[0][1]["etag"], answers[0][2])
    archive = fleet.instances[0].request("/archive/1/rss.xml")[2]
    assert b"Fleet post 0" in archive and b"fh:archive" in archive


def test_what_the_instances_do_not_let_be_cached_always_goes_through(fleet: Fleet) -> None:
    """/healthz (no-store) and a 404 (no Cache-Control) are asked of an instance each time."""
    for path, status in (("/healthz", 200), ("/tags/nothing-here/rss.xml", 404)):
        verdicts = []
        for _ in range(3):
            got, headers, _ = fleet.nginx.get(path)
            assert got == status, path
            verdicts.append(headers.get("x-cache-status"))
        assert verdicts == ["MISS"] * 3, (path, verdicts)


def test_64_clients_cost_the_instances_a_few_requests_per_url_per_max_age(fleet: Fleet) -> None:
    seconds = 3 * MAX_AGE
    marks, nginx_mark = fleet.marks(), fleet.nginx.log_size()

    def check(path: str, status: int, headers: dict[str, str]) -> str | None:
        return None if (status, headers.get("etag")) == (200, fleet.etags[path]) else f"{status} {headers}"

    started = time.monotonic()
    tally = hammer(fleet.nginx.port, lambda client, n: PATHS[(client + n) % len(PATHS)], check, seconds)
    elapsed = time.monotonic() - started
    assert tally.failures == [], tally.failures[:5]
    origin = fleet.origin_requests(marks)
    per_path = Counter(path for path, _, _ in origin)
    print(f"\n{tally.requests} client requests in {elapsed:.1f} s; the instances answered {dict(per_path)}")
    # One request per URL per expiry (nginx's lock and stale-while-updating), give or take
    # the window's two ends.
    allowed = math.ceil(elapsed / MAX_AGE) + 2
    assert all(per_path[path] <= allowed for path in PATHS), (per_path, allowed)
    assert tally.requests > 20 * len(origin)
    for path in SHORT_LIVED:
        revalidated = [(status, sent) for p, status, sent in origin if p == path and sent != "-"]
        assert (304, fleet.etags[path]) in revalidated, (path, revalidated)
    # An archive page with a newer page after it keeps its bytes: a week's max-age.
    assert per_path["/archive/1/rss.xml"] == per_path["/archive/1/atom.xml"] == 0
    verdicts = Counter((m["cache"], m["upstream_status"]) for m in fleet.nginx.log_lines(nginx_mark))
    assert verdicts[("REVALIDATED", "304")] >= len(SHORT_LIVED), verdicts


def test_sigkill_of_an_instance_under_load_fails_no_client_request(fleet: Fleet) -> None:
    """Half the clients ask URLs no cache holds (a query string of their own), so the
    instances keep answering while one of them is killed."""
    victim = fleet.instances[1]
    nginx_mark = fleet.nginx.log_size()

    def target(client: int, n: int) -> str:
        return f"/rss.xml?client={client}&n={n}" if client % 2 else PATHS[(client + n) % len(PATHS)]

    def check(path: str, status: int, headers: dict[str, str]) -> str | None:
        expected = fleet.etags[path.partition("?")[0]]
        return None if (status, headers.get("etag")) == (200, expected) else f"{status} {headers}"

    def kill() -> None:
        time.sleep(1)
        os.killpg(victim.process.pid, signal.SIGKILL)

    killer = threading.Thread(target=kill)
    killer.start()
    tally = hammer(fleet.nginx.port, target, check, 3)
    killer.join()
    assert victim.process.wait(10) == -signal.SIGKILL
    fleet.alive[1] = False
    assert tally.failures == [], tally.failures[:5]
    lines = fleet.nginx.log_lines(nginx_mark)
    victim_address = f"{HOST}:{victim.port}"
    # Requests that met the dead instance and were answered by the next one.
    moved = [m for m in lines if m["upstream"].startswith(victim_address + ", ") and m["status"] == "200"]
    misses = [m for m in lines if "?" in m["target"]]
    print(
        f"\n{tally.requests} client requests, {len(misses)} through to the instances, {len(moved)} moved on"
    )
    assert moved, "no request met the killed instance: the kill proved nothing"
    assert all(m["status"] == "200" for m in lines)


def test_a_new_post_reaches_clients_within_max_age_and_three_polls(fleet: Fleet) -> None:
    old = fleet.nginx.get("/rss.xml", GZIP)[1]["etag"]
    text = post_text(title="Fresh from every copy", date="1750000000", extra="tags: [Gardening]")
    for content in fleet.contents:
        (content / "post-new.txt").write_text(text)
    written = time.monotonic()
    bound = MAX_AGE + 3 * POLL
    seen: dict[int, float] = {}
    problems: list[str] = []

    def poller(index: int) -> None:
        connection = http.client.HTTPConnection(HOST, fleet.nginx.port, timeout=10)
        while time.monotonic() - written < bound + 2:
            connection.request("GET", "/rss.xml", headers=GZIP)
            response = connection.getresponse()
            body = response.read()
            etag = response.getheader("ETag")
            if etag != old:
                if b"Fresh from every copy" not in gzip.decompress(body):
                    problems.append(f"new ETag {etag} without the new post")
                seen.setdefault(index, time.monotonic() - written)
            elif index in seen:
                problems.append("old bytes after new ones")
            if len(seen) == 8 and time.monotonic() - written > max(seen.values()) + 0.5:
                break
            time.sleep(0.05)
        connection.close()

    threads = [threading.Thread(target=poller, args=(index,)) for index in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(bound + 20)
    print(f"\nthe new post reached the 8 pollers after {sorted(round(s, 2) for s in seen.values())} s")
    assert problems == []
    assert len(seen) == 8 and max(seen.values()) <= bound, (seen, bound)


def test_with_every_instance_gone_the_cache_serves_stale_for_stale_if_error(fleet: Fleet) -> None:
    """The window comes from the instances' Cache-Control: max-age, then stale-if-error."""
    path = "/feed.json?stale-if-error"  # an entry of its own, stored at a known moment
    status, headers, last = fleet.nginx.get(path, GZIP)
    stored = time.monotonic()
    assert (status, headers["x-cache-status"]) == (200, "MISS")
    running = [server for index, server in enumerate(fleet.instances) if fleet.alive[index]]
    for server in running:  # all at once, as a platform stops its dynos
        server.process.send_signal(signal.SIGTERM)
    fleet.alive = [False] * len(fleet.instances)
    window = MAX_AGE + STALE_IF_ERROR
    answers: list[tuple[float, int, str]] = []
    while time.monotonic() - stored < window + 2:
        status, got, body = fleet.nginx.get(path, GZIP)
        answers.append((time.monotonic() - stored, status, got.get("x-cache-status", "")))
        if status == 200:
            assert body == last and got["etag"] == headers["etag"]
        if [s for _, s, _ in answers[-3:]] == [502, 502, 502]:
            break
        time.sleep(0.1)
    # Waited for only now: a loaded machine may take seconds to stop them, and the
    # window runs from the moment the answer was stored.
    for server in running:
        assert server.process.wait(30) == 0, server.errors()[-2000:]
    statuses = [status for _, status, _ in answers]
    assert 502 in statuses, f"still served {window + 2} s after it was stored: {answers}"
    first_failure = statuses.index(502)
    print(f"\nthe last bytes were served until {answers[first_failure][0]:.1f} s after they were stored")
    assert set(statuses[:first_failure]) == {200} and set(statuses[first_failure:]) == {502}, answers
    assert "STALE" in {verdict for _, _, verdict in answers[:first_failure]}, answers
    # Served stale until max-age + stale-if-error had passed, and not longer: nginx counts
    # both in whole seconds of its clock, which adds up to one second.
    assert window <= answers[first_failure][0] <= window + 1.2, answers
