"""Last-Modified follows the bytes: each document's date is the moment its current bytes
were first published, from the watcher's clock; it moves forward with every change of
the bytes (the watcher waits for the clock to pass the previous date by a second when
it has not moved that far), never back, and survives restarts. First through the app
with an injected clock, then against the real servers (granian and gunicorn) and the real curl binary."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import logging
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from feeds.caching import http_date
from feeds.config import Settings
from feeds.published import PublishedStore, default_state_dir
from feeds.watcher import Watcher
from feeds.web import create_app

from conftest import MakeSettings, WritePost, post_text
from server import Server

T0 = dt.datetime(2026, 3, 1, 12, 0, 0, 400_000, tzinfo=dt.UTC)
SECOND = dt.timedelta(seconds=1)
# Every kind of document: site feeds, a tag and a category feed, an archive page, the
# index page and the stylesheet.
PATHS = (
    "/rss.xml",
    "/atom.xml",
    "/feed.json",
    "/",
    "/tags/boats/rss.xml",
    "/categories/harbour/atom.xml",
    "/archive/1/rss.xml",
    "/feed.xsl",
)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> dt.datetime:
        return self.now

    def sleep(self, seconds: float) -> None:
        """The watcher waits for the clock to reach a date: time passes only then."""
        self.now += dt.timedelta(seconds=seconds)


def write_site(write_post: WritePost) -> None:
    """Five posts, two per page (item_limit = 2): two archive pages, a tag, a category."""
    for n, name in enumerate(("a", "b", "c", "d", "e")):
        write_post(f"{name}.txt", post(name, 1_600_000_000 + 1000 * n))


def post(name: str, date: int, title: str | None = None, body: str | None = None) -> str:
    return post_text(
        title=title or f"Post {name}",
        date=str(date),
        description=f"About {name}.",
        body=body or f"The body of {name}.\n",
        extra="tags: [Boats]\ncategories: [Harbour]",
    )


# Each change the issue lists, as it happens to the content directory.
CHANGES: dict[str, Callable[[Path, WritePost], object]] = {
    "title edited, no updated": lambda c, w: w("e.txt", post("e", 1_600_004_000, title="Post e, retitled")),
    "body edited": lambda c, w: w("e.txt", post("e", 1_600_004_000, body="A new body.\n")),
    "post added with a past date": lambda c, w: w("old.txt", post("old", 1_500_000_000)),
    "post became invalid": lambda c, w: w("d.txt", "---\ntitle: Post d\ndate: [broken]\n---\nx\n"),
    "newest post deleted": lambda c, w: (c / "e.txt").unlink(),
}


@dataclass
class Site:
    settings: Settings
    store: PublishedStore
    clock: Clock
    watcher: Watcher

    def client(self) -> FlaskClient:
        return create_app(self.settings).test_client()


@pytest.fixture
def site(make_settings: MakeSettings, tmp_path: Path, write_post: WritePost) -> Site:
    write_site(write_post)
    settings = make_settings(state_dir=str(tmp_path / "state"), item_limit=2)
    store = PublishedStore(default_state_dir(settings))
    clock = Clock()
    watcher = Watcher(settings, store, clock, settle_ns=0, sleep=clock.sleep)
    assert watcher.poll() is True
    return Site(settings, store, clock, watcher)


def validators(client: FlaskClient) -> dict[str, tuple[bytes, str, str]]:
    """Each path's bytes, ETag and Last-Modified as served."""
    answers = {path: client.get(path) for path in PATHS}
    for path, response in answers.items():
        assert response.status_code == 200, path
    return {path: (r.data, r.headers["ETag"], r.headers["Last-Modified"]) for path, r in answers.items()}


@pytest.mark.parametrize("clock_moves", [False, True], ids=["clock still", "clock moved"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_every_change_of_the_bytes_moves_last_modified_forward(
    site: Site, write_post: WritePost, content_dir: Path, change: str, clock_moves: bool
) -> None:
    client = site.client()
    before = validators(client)
    assert {lm for _, _, lm in before.values()} == {http_date(T0)}
    CHANGES[change](content_dir, write_post)
    if clock_moves:
        site.clock.now += dt.timedelta(minutes=3, seconds=20.9)
    assert site.watcher.poll() is True
    after = validators(client)
    expected = http_date(site.clock.now) if clock_moves else http_date(T0 + SECOND)
    changed = [path for path in PATHS if after[path][0] != before[path][0]]
    assert "/rss.xml" in changed and "/feed.xsl" not in changed
    for path in PATHS:
        body, etag, last_modified = after[path]
        _, old_etag, old_last_modified = before[path]
        if path in changed:
            assert last_modified == expected, path
            # A reader that validates by date alone gets the new bytes...
            response = client.get(path, headers={"If-Modified-Since": old_last_modified})
            assert (response.status_code, response.data) == (200, body), path
            # ...and then a 304 with the new date.
            assert client.get(path, headers={"If-Modified-Since": last_modified}).status_code == 304
        else:
            assert (etag, last_modified) == (old_etag, old_last_modified), path


def test_last_modified_never_goes_back_even_when_the_clock_does(
    site: Site, write_post: WritePost, content_dir: Path
) -> None:
    client = site.client()
    dates = [parsedate_to_datetime(client.get("/rss.xml").headers["Last-Modified"])]
    for change in CHANGES.values():
        change(content_dir, write_post)
        site.clock.now -= dt.timedelta(days=1)
        assert site.watcher.poll() is True
        dates.append(parsedate_to_datetime(client.get("/rss.xml").headers["Last-Modified"]))
    assert dates == [T0.replace(microsecond=0) + n * SECOND for n in range(len(CHANGES) + 1)]


def test_last_modified_is_never_later_than_the_moment_it_is_served(site: Site, write_post: WritePost) -> None:
    """A post every 0.12 s: each change still gets a later date, and no date is ahead of
    the clock when it is served (RFC 9110 §8.8.2.1), because the watcher waits for the
    clock to reach the date instead of dating the bytes in the future."""
    client = site.client()
    dates = []
    for n in range(20):
        write_post("e.txt", post("e", 1_600_004_000, title=f"Retitled {n}"))
        site.clock.now += dt.timedelta(seconds=0.12)
        assert site.watcher.poll() is True
        served = parsedate_to_datetime(client.get("/rss.xml").headers["Last-Modified"])
        assert served <= site.clock.now, n
        dates.append(served)
    assert dates == sorted(set(dates))  # strictly later at every change


def test_a_document_that_comes_back_starts_after_every_date_published(
    site: Site, write_post: WritePost, content_dir: Path
) -> None:
    """A tag feed removed and made again (with the clock gone back) is dated after what
    any reader may hold for it."""
    client = site.client()
    for name in ("a", "b", "c", "d", "e"):
        write_post(f"{name}.txt", post(name, 1_600_000_000).replace("tags: [Boats]\n", ""))
    assert site.watcher.poll() is True
    assert client.get("/tags/boats/rss.xml").status_code == 404
    latest = parsedate_to_datetime(client.get("/rss.xml").headers["Last-Modified"])
    write_post("e.txt", post("e", 1_600_004_000))
    site.clock.now -= dt.timedelta(days=30)
    assert site.watcher.poll() is True
    back = parsedate_to_datetime(client.get("/tags/boats/rss.xml").headers["Last-Modified"])
    assert back == latest + SECOND


def test_last_modified_survives_a_restart_over_the_same_state_dir(
    site: Site, write_post: WritePost, content_dir: Path
) -> None:
    before = validators(site.client())
    later = Clock()
    later.now = T0 + dt.timedelta(hours=5)
    restarted = Watcher(
        site.settings, PublishedStore(default_state_dir(site.settings)), later, settle_ns=0, sleep=later.sleep
    )
    assert restarted.poll() is False  # the same bytes: nothing published, dates kept
    assert validators(site.client()) == before
    later.now = T0 - dt.timedelta(hours=5)  # and a clock behind the dates published
    CHANGES["body edited"](content_dir, write_post)
    assert restarted.poll() is True
    assert site.client().get("/rss.xml").headers["Last-Modified"] == http_date(T0 + SECOND)


def test_publication_time_never_enters_the_bytes(
    make_settings: MakeSettings, tmp_path: Path, write_post: WritePost
) -> None:
    write_site(write_post)
    answers = []
    for n, moment in enumerate((T0, T0 + dt.timedelta(days=400))):
        settings = make_settings(state_dir=str(tmp_path / f"state{n}"), item_limit=2)
        clock = Clock()
        clock.now = moment
        assert Watcher(
            settings, PublishedStore(default_state_dir(settings)), clock, settle_ns=0, sleep=clock.sleep
        ).poll()
        answers.append(validators(create_app(settings).test_client()))
    for path in PATHS:
        assert answers[0][path][:2] == answers[1][path][:2], path  # bytes and ETag
        assert answers[0][path][2] != answers[1][path][2], path


def test_a_state_dir_of_0_1_0_is_published_afresh(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """0.1.0 kept a folder of files per generation, and `current` named it. Such a state
    directory is not read: until the first publish the site answers 503, as at any
    first start; that publish counts on from the old number, removes the old folders
    and says so. The ETags are the same (the same digest of the same bytes), and every
    Last-Modified is the new publication's, later than the old one: never back."""
    before = validators(site.client())
    generation = site.store.load_current()
    assert generation is not None
    root = site.store.root
    folder = root / "generations" / "000007-0123456789abcdef"
    for path, body in generation.files.items():
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        (folder / path).write_bytes(body)
        (folder / (path + ".gz")).write_bytes(gzip.compress(body))
    old_meta = {
        **generation.meta,
        "files": {
            p: {"last_modified": a["last_modified"], "max_age": a["max_age"]}
            for p, a in generation.meta["files"].items()
        },
    }
    (folder / "build.json").write_text(json.dumps(old_meta))
    shutil.rmtree(root / "manifests")
    shutil.rmtree(root / "blobs")
    site.store.current_link.unlink()
    site.store.current_link.symlink_to("generations/000007-0123456789abcdef")
    store = PublishedStore(default_state_dir(site.settings))
    assert site.client().get("/rss.xml").status_code == 503
    site.clock.now += dt.timedelta(hours=1)
    with caplog.at_level(logging.WARNING, logger="feeds"):
        assert Watcher(site.settings, store, site.clock, settle_ns=0, sleep=site.clock.sleep).poll() is True
    assert (store.current_name() or "").startswith("000008-")
    assert not (root / "generations").exists()
    assert "removing the generation folders of an older version" in caplog.text
    after = validators(site.client())
    for path in PATHS:
        assert after[path][:2] == before[path][:2], path
        assert after[path][2] == http_date(site.clock.now) != before[path][2], path


# --- the real servers -------------------------------------------------------------------------------


@dataclass
class Served:
    kind: str
    server: Server
    content: Path

    def write(self, relpath: str, text: str) -> Path:
        path = self.content / relpath
        path.write_text(text)
        return path

    def validators(self) -> dict[str, tuple[bytes, str, str]]:
        answers = {path: self.server.request(path) for path in PATHS}
        for path, (status, _, _) in answers.items():
            assert status == 200, f"{self.kind} {path}: {status}"
        return {path: (body, h["etag"], h["last-modified"]) for path, (_, h, body) in answers.items()}

    def change(
        self, change: Callable[[Path, WritePost], object]
    ) -> tuple[dict[str, tuple[bytes, str, str]], ...]:
        """Applies `change` and waits until it is served; the validators before and after."""
        before = self.validators()
        change(self.content, self.write)
        deadline = time.monotonic() + 15
        while self.server.request("/rss.xml")[1]["etag"] == before["/rss.xml"][1]:
            assert time.monotonic() < deadline, f"{self.kind}: the change was never served"
            time.sleep(0.05)
        return before, self.validators()


@pytest.fixture(scope="module", params=["granian", "gunicorn"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    kind: str = request.param
    workdir = tmp_path_factory.mktemp(f"last-modified-{kind}")
    content = workdir / "content"
    content.mkdir()
    for n, name in enumerate(("a", "b", "c", "d", "e")):
        (content / f"{name}.txt").write_text(post(name, 1_600_000_000 + 1000 * n))
    server = Server(
        workdir, content, via_cli=kind == "granian", state_dir=str(workdir / "state"), item_limit="2"
    )
    try:
        server.wait_until_ready()
        yield Served(kind, server, content)
    finally:
        exit_status = server.stop()
    assert exit_status == 0, server.errors()[-3000:]


def later(first: str, second: str) -> bool:
    return parsedate_to_datetime(first) > parsedate_to_datetime(second)


def test_the_real_servers_date_every_change_of_the_bytes(served: Served) -> None:
    """For each change: with the old validators, If-Modified-Since alone gets the new
    bytes, and If-None-Match plus If-Modified-Since a 200 dated after the date sent; with
    the new validators, both get 304. Documents whose bytes did not change keep both."""
    server = served.server
    changed_ever: set[str] = set()
    for name, change in CHANGES.items():
        before, after = served.change(change)
        for path in PATHS:
            body, etag, last_modified = after[path]
            old_body, old_etag, old_date = before[path]
            what = f"{served.kind}, {name}, {path}"
            if body == old_body:
                assert (etag, last_modified) == (old_etag, old_date), what
                assert server.request(path, headers={"If-Modified-Since": old_date})[0] == 304, what
                continue
            changed_ever.add(path)
            status, _, got = server.request(path, headers={"If-Modified-Since": old_date})
            assert (status, got) == (200, body), what
            status, headers, got = server.request(
                path, headers={"If-None-Match": old_etag, "If-Modified-Since": old_date}
            )
            assert (status, got) == (200, body), what
            assert later(headers["last-modified"], old_date), what
            for conditions in (
                {"If-Modified-Since": last_modified},
                {"If-None-Match": etag, "If-Modified-Since": last_modified},
            ):
                status, headers, got = server.request(path, headers=conditions)
                assert (status, got, headers["last-modified"]) == (304, b"", last_modified), what
    assert changed_ever == set(PATHS) - {"/feed.xsl"}


def curl(url: str, since: str, etag: str, out: Path) -> str:
    """A conditional GET as newsboat makes it through libcurl: the stored date as a time
    condition (-z: a 200 not newer than it is thrown away) and the stored ETag."""
    result = subprocess.run(
        [
            *("curl", "--silent", "--show-error", "-z", since, "-H", f"If-None-Match: {etag}"),
            *("-o", str(out), "--write-out", "%{http_code}", url),
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return result.stdout


def test_curl_with_a_time_condition_gets_every_change(served: Served, tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{served.server.port}/rss.xml"
    for n in range(2):  # twice: the date and tag curl kept from the first change are old at the second
        title = f"Retitled {n}"
        before, after = served.change(lambda c, w, t=title: w("e.txt", post("e", 1_600_004_000, title=t)))
        _, old_etag, old_date = before["/rss.xml"]
        out = tmp_path / f"rss-{n}.xml"
        assert curl(url, old_date, old_etag, out) == "200"
        assert out.read_bytes() == after["/rss.xml"][0]
        # The date of another instance, which published the old bytes later than these
        # were published here: the answer goes without Last-Modified, so curl keeps it.
        other_instance = http_date(parsedate_to_datetime(after["/rss.xml"][2]) + dt.timedelta(hours=1))
        assert curl(url, other_instance, old_etag, out) == "200"
        assert out.read_bytes() == after["/rss.xml"][0]
        status, _, _ = served.server.request("/rss.xml", headers={"If-Modified-Since": other_instance})
        assert status == 200  # and a date alone, if it is not the one served, never gets a 304
