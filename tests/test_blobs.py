"""Content-addressed publishing: each document's bytes are stored once under their digest
(also their ETag), a generation is a manifest, one edit writes only the blobs it
changed, and collection never takes a blob that a kept manifest names, while a worker
that held a collected one moves on to the current generation."""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import feeds.caching
import feeds.published
import feeds.watcher
from feeds.caching import content_digest
from feeds.config import Settings
from feeds.published import KEEP_GENERATIONS, PublishedStore, default_state_dir
from feeds.watcher import Watcher
from feeds.web import CONTENT_TYPES, Snapshots, create_app, route_of

from conftest import MakeSettings, WritePost, no_wait, post_text
from server import Server

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def write_site(write_post: WritePost) -> None:
    """Twelve posts, two tags, four archive pages (item_limit = 3): some forty documents."""
    for n in range(12):
        tag = "Boats" if n % 2 else "Gulls"
        write_post(
            f"p{n:02}.txt",
            post_text(title=f"Post {n}", date=str(1_600_000_000 + 1000 * n), extra=f"tags: [{tag}]"),
        )


def edit(write_post: WritePost, n: int, body: str) -> None:
    """A new body and summary for post `n`, its title, date and tags unchanged."""
    tag = "Boats" if n % 2 else "Gulls"
    write_post(
        f"p{n:02}.txt",
        post_text(
            title=f"Post {n}",
            date=str(1_600_000_000 + 1000 * n),
            description=body.strip(),
            body=body,
            extra=f"tags: [{tag}]",
        ),
    )


def new_watcher(settings: Settings) -> Watcher:
    return Watcher(
        settings, PublishedStore(default_state_dir(settings)), lambda: NOW, settle_ns=0, sleep=no_wait
    )


@pytest.fixture
def site_settings(make_settings: MakeSettings, tmp_path: Path, write_post: WritePost) -> Settings:
    write_site(write_post)
    return make_settings(state_dir=str(tmp_path / "state"), item_limit=3)


def blob_files(store: PublishedStore) -> dict[str, int]:
    """Every file below blobs/, with its inode (a file written again gets a new one)."""
    return {path.name: path.stat().st_ino for path in store.blobs.rglob("*") if path.is_file()}


def manifest(store: PublishedStore, name: str | None = None) -> dict[str, Any]:
    name = name or store.current_name()
    assert name is not None
    return store.read_manifest(name)


def digests(store: PublishedStore, name: str | None = None) -> dict[str, str]:
    return {path: about["digest"] for path, about in manifest(store, name)["files"].items()}


def kept_names(store: PublishedStore) -> list[str]:
    return sorted(path.name.removesuffix(".json") for path in store.manifests.iterdir())


def counting(monkeypatch: pytest.MonkeyPatch, owner: object, name: str) -> list[bytes]:
    """Records the argument of every call of `owner.name`."""
    calls: list[bytes] = []
    real: Callable[[bytes], Any] = getattr(owner, name)

    def counted(body: bytes) -> Any:
        calls.append(body)
        return real(body)

    monkeypatch.setattr(owner, name, counted)
    return calls


# --- one edit writes only what it changed --------------------------------------------------------


def test_one_edit_writes_only_the_changed_blobs_and_one_manifest(
    site_settings: Settings, write_post: WritePost
) -> None:
    watcher = new_watcher(site_settings)
    assert watcher.poll() is True
    store = watcher.store
    before, old = blob_files(store), digests(store)
    assert len(old) > 30
    edit(write_post, 0, "A new body for the oldest post.\n")  # on the last archive page only
    assert watcher.poll() is True
    after, new = blob_files(store), digests(store)
    changed = {path for path in new if new[path] != old[path]}
    assert changed and len(changed) <= 4, changed  # the archive page that holds it, and the index
    written = {name for name in after if name not in before or after[name] != before[name]}
    assert written == {new[path] for path in changed} | {new[path] + ".gz" for path in changed}
    assert len(kept_names(store)) == 2  # one manifest more, and nothing else
    # The same bytes are stored once, however many documents or generations carry them.
    assert len(after) == 2 * len({*old.values(), *new.values()})


def test_only_new_bytes_are_digested_and_gzipped(
    site_settings: Settings, write_post: WritePost, monkeypatch: pytest.MonkeyPatch
) -> None:
    watcher = new_watcher(site_settings)
    assert watcher.poll() is True
    old = digests(watcher.store)
    digested = counting(monkeypatch, feeds.watcher, "content_digest")
    gzipped = counting(monkeypatch, feeds.published, "compress")
    edit(write_post, 0, "Another body.\n")
    assert watcher.poll() is True
    new = digests(watcher.store)
    changed = {new[path] for path in new if new[path] != old[path]}
    assert sorted(content_digest(body) for body in digested) == sorted(changed)
    assert sorted(content_digest(body) for body in gzipped) == sorted(changed)
    edit(write_post, 0, "The body before.\n")
    edit(write_post, 0, "Another body.\n")  # back to bytes already stored: nothing to gzip
    digested.clear(), gzipped.clear()
    assert watcher.poll() is False  # the same bytes as in service
    assert gzipped == []


def test_a_restarted_watcher_publishes_nothing_for_the_same_bytes(
    site_settings: Settings, write_post: WritePost
) -> None:
    """After a restart no bytes are in memory: the digests, compared with the manifest in
    service, tell that nothing changed."""
    assert new_watcher(site_settings).poll() is True
    store = PublishedStore(default_state_dir(site_settings))
    name, before = store.current_name(), blob_files(store)
    assert new_watcher(site_settings).poll() is False
    assert store.current_name() == name and blob_files(store) == before


def test_a_blob_cut_short_is_written_again(site_settings: Settings, write_post: WritePost) -> None:
    """A blob whose size is not its bytes' (the machine died before they reached the disk)
    is not trusted to be there: the next publish that names it writes it again."""
    watcher = new_watcher(site_settings)
    assert watcher.poll() is True
    rss = digests(watcher.store)["rss.xml"]
    edit(write_post, 11, "A new body for the newest post.\n")
    assert watcher.poll() is True
    (watcher.store.blobs / rss[:2] / rss).write_bytes(b"")  # kept: the previous manifest names it
    write_site(write_post)  # the first bytes again: rss.xml is `rss` once more
    assert watcher.poll() is True
    assert digests(watcher.store)["rss.xml"] == rss
    body = watcher.store.read_blob(rss)
    assert content_digest(body) == rss and body.startswith(b"<?xml")
    response = create_app(site_settings).test_client().get("/rss.xml")
    assert response.data == body and response.headers["ETag"] == f'"{rss}"'


def test_a_restarted_watcher_restores_a_blob_in_service_that_was_cut_short(
    site_settings: Settings, write_post: WritePost
) -> None:
    """A crash of the machine can leave the blob of a document in service empty; the
    content did not change, so no publish would name it as new. A watcher that starts
    checks the blobs the manifest in service names against the bytes it builds."""
    assert new_watcher(site_settings).poll() is True
    store = PublishedStore(default_state_dir(site_settings))
    name, rss = store.current_name(), digests(store)["rss.xml"]
    good = store.read_blob(rss)
    (store.blobs / rss[:2] / rss).write_bytes(b"")
    restarted = new_watcher(site_settings)
    assert restarted.poll() is False  # the same bytes: nothing to publish
    assert store.current_name() == name and store.read_blob(rss) == good
    assert create_app(site_settings).test_client().get("/rss.xml").data == good


def test_a_blob_whose_twin_is_gone_is_written_again(site_settings: Settings, write_post: WritePost) -> None:
    """A publisher killed while collecting a blob may leave one of the pair. Bytes
    published again later must come back with both, or every request for them fails."""
    watcher = new_watcher(site_settings)
    assert watcher.poll() is True
    rss = digests(watcher.store)["rss.xml"]
    edit(write_post, 11, "A new body for the newest post.\n")
    assert watcher.poll() is True
    (watcher.store.blobs / rss[:2] / (rss + ".gz")).unlink()  # as a kill between two unlinks
    write_site(write_post)
    assert new_watcher(site_settings).poll() is True
    assert digests(watcher.store)["rss.xml"] == rss
    gzipped = create_app(site_settings).test_client().get("/rss.xml", headers={"Accept-Encoding": "gzip"})
    assert gzipped.status_code == 200 and gzipped.headers["ETag"] == f'"{rss}-gzip"'


def test_collection_removes_a_blob_before_its_twin(
    site_settings: Settings, write_post: WritePost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reverse of the order blobs are written in: however a removal is cut short, a
    blob that is there has its twin."""
    removed: list[str] = []
    real_unlink = Path.unlink

    def unlink(path: Path, missing_ok: bool = False) -> None:
        removed.append(path.name)
        real_unlink(path, missing_ok=missing_ok)

    watcher = new_watcher(site_settings)
    assert watcher.poll() is True
    monkeypatch.setattr(Path, "unlink", unlink)
    for n in range(KEEP_GENERATIONS + 1):
        edit(write_post, 11, f"Body number {n} of the newest post.\n")
        assert watcher.poll() is True
    blobs = [name for name in removed if len(name.removesuffix(".gz")) == 32]
    assert blobs and all(
        blobs.index(name) < blobs.index(name + ".gz") for name in blobs if not name.endswith(".gz")
    )


def test_a_damaged_blob_is_never_served_and_a_restart_mends_it(
    site_settings: Settings, write_post: WritePost, caplog: pytest.LogCaptureFixture
) -> None:
    """A byte changed on disk keeps the blob's size: served, it went out under the ETag
    of other bytes. A worker checks each blob it reads; a builder that starts checks
    those in service byte for byte and writes them again."""
    assert new_watcher(site_settings).poll() is True
    store = PublishedStore(default_state_dir(site_settings))
    rss = digests(store)["rss.xml"]
    good = store.read_blob(rss)
    blob = store.blobs / rss[:2] / rss
    blob.write_bytes(good.replace(b"<rss", b"<RSS", 1))
    # The error reaches the server, which answers 500 (test_state_dir shows it for real).
    with caplog.at_level(logging.ERROR, logger="feeds.web"), pytest.raises(feeds.published.UnsafeStateError):
        create_app(site_settings).test_client().get("/rss.xml")
    assert "not those of its digest" in caplog.text
    assert new_watcher(site_settings).poll() is False  # the same bytes: nothing published
    mended = create_app(site_settings).test_client().get("/rss.xml")
    assert (mended.status_code, mended.data, mended.headers["ETag"]) == (200, good, f'"{rss}"')


def test_a_blob_gone_from_the_generation_in_service_is_an_error_not_a_site_being_built(
    site_settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    """Deleted by hand or lost by the disk: answering 503 "the first build has not
    finished" would hide it; it fails with a log line naming the generation."""
    assert new_watcher(site_settings).poll() is True
    store = PublishedStore(default_state_dir(site_settings))
    rss = digests(store)["rss.xml"]
    (store.blobs / rss[:2] / rss).unlink()
    with caplog.at_level(logging.ERROR, logger="feeds.web"), pytest.raises(feeds.published.UnsafeStateError):
        create_app(site_settings).test_client().get("/rss.xml")
    assert f"generation {store.current_name()} lacks a file" in caplog.text


# --- collection ------------------------------------------------------------------------------------


def test_collection_never_removes_a_blob_that_a_kept_manifest_names(
    site_settings: Settings, write_post: WritePost
) -> None:
    """Edits that come back to earlier bytes (a blob shared by a dropped and a kept
    manifest), removals and additions: after every publish, the blobs on disk are exactly
    those the kept manifests name, each with its twin."""
    watcher = new_watcher(site_settings)
    assert watcher.poll() is True
    bodies = ["First.\n", "Second.\n", "First.\n", "Third.\n", "Second.\n", "Fourth.\n", "First.\n"]
    for step, body in enumerate(bodies):
        edit(write_post, 11, body)
        if step == 3:
            (Path(site_settings.content_dir) / "p05.txt").unlink()
        if step == 5:
            write_site(write_post)
        assert watcher.poll() is True
        store = watcher.store
        names = kept_names(store)
        assert len(names) == min(KEEP_GENERATIONS, step + 2)
        named = {digest for name in names for digest in digests(store, name).values()}
        assert set(blob_files(store)) == named | {digest + ".gz" for digest in named}, step
        for digest in named:
            assert content_digest(store.read_blob(digest)) == digest


def test_collection_lists_the_blobs_only_at_a_process_first_publish(
    site_settings: Settings, write_post: WritePost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The full sweep (O(site)) runs once per publisher and after a failed publish; every
    other publish collects from the difference of the manifests it drops."""
    watcher = new_watcher(site_settings)
    listed: list[str] = []
    real_scandir = os.scandir

    def scandir(path: Any = ".") -> Any:
        if str(path).startswith(str(watcher.store.blobs)):
            listed.append(str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    assert watcher.poll() is True
    assert listed, "the first publish sweeps"
    for n in range(5):
        listed.clear()
        edit(write_post, 11, f"Edit {n}.\n")
        assert watcher.poll() is True
        assert listed == [], n
    real_replace = os.replace

    def full_disk(source: Any, target: Any) -> None:
        if str(target).startswith(str(watcher.store.blobs)):
            raise OSError(28, "No space left on device")  # after some blobs were stored
        real_replace(source, target)

    edit(write_post, 11, "This publish fails.\n")
    monkeypatch.setattr(os, "replace", full_disk)
    assert watcher.poll() is False
    monkeypatch.setattr(os, "replace", real_replace)
    listed.clear()
    assert watcher.poll() is True
    assert listed, "a publish after a failed one sweeps"
    named = {digest for name in kept_names(watcher.store) for digest in digests(watcher.store, name).values()}
    assert set(blob_files(watcher.store)) == named | {digest + ".gz" for digest in named}


def test_a_worker_whose_blob_was_collected_moves_to_the_current_generation(
    site_settings: Settings, write_post: WritePost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A request reads `current`, and before it reads the tag feed's blob, the publisher
    publishes KEEP_GENERATIONS times and collects that blob: the worker serves the current
    bytes, with their digest as ETag, instead of failing."""
    watcher = new_watcher(site_settings)
    assert watcher.poll() is True
    store = PublishedStore(default_state_dir(site_settings))
    snapshots = Snapshots(store, 300)
    old = digests(store)
    real_read_blob = store.read_blob
    held = threading.Event()
    first = [True]

    def read_blob_after_publishes(digest: str, gzipped: bool = False) -> bytes:
        if first[0]:
            first[0] = False
            for n in range(KEEP_GENERATIONS):
                edit(write_post, 11, f"Newer body {n}.\n")
                assert watcher.poll() is True
            held.set()
        return real_read_blob(digest, gzipped)

    monkeypatch.setattr(store, "read_blob", read_blob_after_publishes)
    representation = snapshots.representation("/tags/boats/rss.xml")
    assert held.is_set()
    current = digests(store)
    assert current["tags/boats/rss.xml"] != old["tags/boats/rss.xml"]
    assert not (store.blobs / old["tags/boats/rss.xml"][:2] / old["tags/boats/rss.xml"]).exists()
    assert representation is not None
    assert representation.identity.etag == f'"{current["tags/boats/rss.xml"]}"'
    assert b"Newer body 2." in representation.identity.body


def test_workers_take_etags_from_the_manifest_and_never_hash_a_body(
    site_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert new_watcher(site_settings).poll() is True
    store = PublishedStore(default_state_dir(site_settings))

    def no_hashing(body: bytes) -> str:
        raise AssertionError("a worker hashed a body")

    monkeypatch.setattr(feeds.caching, "content_digest", no_hashing)
    client = create_app(site_settings).test_client()
    for path, digest in digests(store).items():
        if path.endswith(("rss.xml", "atom.xml", "feed.json")):
            response = client.get("/" + path)
            assert response.status_code == 200 and response.headers["ETag"] == f'"{digest}"', path
            gzipped = client.get("/" + path, headers={"Accept-Encoding": "gzip"})
            assert gzipped.headers["ETag"] == f'"{digest}-gzip"', path


def test_a_worker_reads_again_only_the_blobs_an_edit_changed(
    site_settings: Settings, write_post: WritePost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker keeps the blobs it has read while the next manifest names them too."""
    watcher = new_watcher(site_settings)
    assert watcher.poll() is True
    store = PublishedStore(default_state_dir(site_settings))
    snapshots = Snapshots(store, 300)
    read: list[str] = []
    real_read_blob = store.read_blob

    def read_blob(digest: str, gzipped: bool = False) -> bytes:
        read.append(digest)
        return real_read_blob(digest, gzipped)

    monkeypatch.setattr(store, "read_blob", read_blob)
    routes = [route_of(path) for path in digests(store) if path.rpartition("/")[2] in CONTENT_TYPES]
    for route in routes:
        assert snapshots.representation(route) is not None, route
    old = set(digests(store).values())
    assert set(read) == old
    edit(write_post, 0, "A new summary for the oldest post.\n")
    assert watcher.poll() is True
    read.clear()
    for route in routes:
        assert snapshots.representation(route) is not None, route
    assert read and set(read) == set(digests(store).values()) - old


# --- a manifest that is missing or not one --------------------------------------------------------


def test_a_corrupt_manifest_is_never_served_and_the_next_publish_replaces_it(
    site_settings: Settings, write_post: WritePost, caplog: pytest.LogCaptureFixture
) -> None:
    assert new_watcher(site_settings).poll() is True
    store = PublishedStore(default_state_dir(site_settings))
    path = store.root / os.readlink(store.current_link)
    path.write_bytes(path.read_bytes()[:100])  # cut short
    client = create_app(site_settings).test_client()
    with caplog.at_level(logging.ERROR, logger="feeds"), pytest.raises(feeds.published.UnsafeStateError):
        client.get("/rss.xml")
    assert "refusing to serve /rss.xml" in caplog.text and "not a manifest this service wrote" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="feeds"):
        restarted = new_watcher(site_settings)
        assert restarted.poll() is True  # the same bytes, published afresh
    assert "cannot be read" in caplog.text and "publishing afresh" in caplog.text
    response = client.get("/rss.xml")
    assert response.status_code == 200 and response.headers["ETag"] == f'"{digests(store)["rss.xml"]}"'


def test_a_missing_manifest_is_a_site_not_yet_built_until_the_next_publish(
    site_settings: Settings, write_post: WritePost
) -> None:
    assert new_watcher(site_settings).poll() is True
    store = PublishedStore(default_state_dir(site_settings))
    (store.root / os.readlink(store.current_link)).unlink()
    client = create_app(site_settings).test_client()
    assert client.get("/rss.xml").status_code == 503
    assert new_watcher(site_settings).poll() is True
    assert client.get("/rss.xml").status_code == 200


# --- a real server ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["granian", "gunicorn"])
def test_a_server_worker_whose_generation_was_collected_serves_the_current_bytes(
    tmp_path: Path, content_dir: Path, make_settings: MakeSettings, write_post: WritePost, kind: str
) -> None:
    """The test holds the watcher's lease, so that it alone publishes. A worker serves
    generation 1; then KEEP_GENERATIONS publishes drop its manifest and collect its
    blobs; the worker answers the current bytes, under their digests, for a URL it
    served before and for one it never did."""
    write_site(write_post)
    state = tmp_path / "state"
    settings = make_settings(state_dir=str(state), item_limit=3)
    watcher = new_watcher(settings)
    lease = os.open(state / "watcher.lock", os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(lease, fcntl.LOCK_EX | fcntl.LOCK_NB)
    assert watcher.poll() is True
    first = digests(watcher.store)
    server = Server(
        tmp_path, content_dir, workers=1, via_cli=kind == "granian", state_dir=str(state), item_limit="3"
    )
    try:
        server.wait_until_ready()
        status, headers, _ = server.request("/tags/boats/rss.xml")
        assert status == 200 and headers["etag"] == f'"{first["tags/boats/rss.xml"]}"'
        for n in range(KEEP_GENERATIONS):
            edit(write_post, 11, f"Newer body {n}.\n")
            assert watcher.poll() is True
        assert not (
            watcher.store.blobs / first["tags/boats/rss.xml"][:2] / first["tags/boats/rss.xml"]
        ).exists()
        current = digests(watcher.store)
        for path in ("tags/boats/rss.xml", "tags/boats/atom.xml"):
            status, headers, body = server.request("/" + path)
            assert status == 200 and headers["etag"] == f'"{current[path]}"', path
            assert content_digest(body) == current[path] and b"Newer body 2." in body
    finally:
        assert server.stop() == 0
        os.close(lease)
    assert "Traceback" not in server.errors()
