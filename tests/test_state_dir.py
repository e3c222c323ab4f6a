"""The state directory is the service's own: by default in the user's XDG state folder
(never a predictable name in the shared temporary folder), refused at start when another
user owns it or may write to it, and read without ever following a symlink. These tests
run as root and hand folders to `nobody` (uid 65534) to play the other local user."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from feeds.config import Settings
from feeds.errors import ConfigError
from feeds.published import PublishedStore, UnsafeStateError, default_state_dir
from feeds.watcher import Watcher
from feeds.web import create_app

from conftest import MakeSettings, WritePost, post_text
from server import Server

NOBODY = 65534
SECRET = b"root-only secret: the service must never serve this\n"
DIGEST = re.compile(r"[0-9a-f]{16}")


@pytest.fixture
def secret(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_bytes(SECRET)
    path.chmod(0o600)
    return path


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def refusal(root: Path) -> str:
    with pytest.raises(ConfigError) as caught:
        PublishedStore(root)
    assert caught.value.setting == "state_dir"
    assert str(caught.value).startswith("state_dir: ")
    return caught.value.reason


def published(settings: Settings, write_post: WritePost) -> PublishedStore:
    write_post("harbour.txt", post_text(title="Harbour", extra="tags: [Boats]"))
    store = PublishedStore(default_state_dir(settings))
    assert Watcher(settings, store, settle_ns=0).poll() is True
    return store


# --- where the default state directory is ----------------------------------------------------------


def test_the_default_state_dir_is_in_the_users_xdg_state_folder(
    settings: Settings, make_settings: MakeSettings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg" / "state"))
    root = default_state_dir(settings)
    assert root.parent == tmp_path / "xdg" / "state" / "feeds" and DIGEST.fullmatch(root.name)
    store = PublishedStore(root)
    for folder in (root, root.parent, root.parent.parent, store.blobs, store.manifests):
        assert mode(folder) == 0o700, folder
    # The same settings give the same folder, in this process and in another one (the
    # workers are separate processes); other settings give another.
    assert default_state_dir(make_settings()) == root
    assert default_state_dir(make_settings(title="Another site")) != root
    script = (
        "from pathlib import Path\nfrom feeds.config import load_settings\n"
        "from feeds.published import default_state_dir\n"
        f"overrides = {{'content_dir': {str(settings.content_dir)!r}, 'base_url': 'https://example.com'}}\n"
        f"print(default_state_dir(load_settings(Path({str(tmp_path / 'empty.toml')!r}), {{}}, overrides)))\n"
    )
    other_process = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert other_process.stdout.strip() == str(root)


def test_without_xdg_state_home_it_is_below_the_home_folder(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(home))
    root = default_state_dir(settings)
    assert root.parent == home / ".local" / "state" / "feeds"
    PublishedStore(root)
    assert [mode(p) for p in (home / ".local", home / ".local" / "state", root.parent, root)] == [0o700] * 4
    monkeypatch.setenv("XDG_STATE_HOME", "relative/path")  # invalid by the XDG spec: ignored
    assert default_state_dir(settings) == root


@pytest.mark.parametrize("home", ["missing", "nobodys"])
def test_without_a_usable_home_a_fresh_private_temporary_folder(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, home: str
) -> None:
    folder = tmp_path / "home"
    if home == "nobodys":
        folder.mkdir()
        os.chown(folder, NOBODY, NOBODY)
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(folder))
    root = default_state_dir(settings)
    assert root.parent == Path(tempfile.gettempdir()) and root.name.startswith("feeds-")
    assert root != Path(tempfile.gettempdir()) / f"feeds-{os.getuid()}-{root.name.split('-')[1]}"
    assert mode(root) == 0o700 and root.stat().st_uid == os.geteuid()
    assert default_state_dir(settings) == root  # the app and the watcher of one process agree
    PublishedStore(root)
    os.rmdir(root / "blobs")
    os.rmdir(root / "manifests")
    os.rmdir(root)


# --- refusing a state directory that is not the service's alone -----------------------------------


def hostile_state_dir(root: Path, secret: Path) -> None:
    """What the other user prepared: a manifest whose feed's blobs lead to `secret`."""
    digest = "0123456789abcdef" * 2
    blobs, manifests = root / "blobs" / digest[:2], root / "manifests"
    blobs.mkdir(parents=True)
    manifests.mkdir()
    files = {"rss.xml": {"digest": digest, "last_modified": "2026-01-01T00:00:00Z", "max_age": None}}
    manifest = manifests / "000001-0000000000000000.json"
    manifest.write_text(json.dumps({"posts": 1, "files": files}))
    for name in (digest, digest + ".gz"):
        (blobs / name).symlink_to(secret)
    (root / "current").symlink_to("manifests/000001-0000000000000000.json")
    for path in (root, root / "blobs", blobs, manifests, manifest, root / "current"):
        os.lchown(path, NOBODY, NOBODY)


def test_a_default_state_dir_made_by_another_user_is_refused(
    settings: Settings, secret: Path, tmp_path: Path
) -> None:
    """The report: another user made the default folder first and filled it; the service
    started as root answered GET /rss.xml with a root-only file."""
    root = default_state_dir(settings)
    hostile_state_dir(root, secret)
    try:
        with pytest.raises(ConfigError) as caught:
            create_app(settings)
        assert caught.value.setting == "state_dir"
        assert f"belongs to uid {NOBODY}, not to this service's uid 0" in caught.value.reason
    finally:
        subprocess.run(["rm", "-rf", str(root)], check=True)


@pytest.mark.parametrize("folder_mode", [0o770, 0o720, 0o707, 0o702, 0o777, 0o1777], ids=oct)
def test_a_state_dir_others_may_write_to_is_refused(tmp_path: Path, folder_mode: int) -> None:
    root = tmp_path / "state"
    root.mkdir()
    root.chmod(folder_mode)
    assert refusal(
        root
    ) == f"{str(root)!r} is writable by its group or by others (mode {folder_mode:o}); " + (
        "it must be this service's alone"
    )


@pytest.mark.parametrize("folder", ["blobs", "manifests"])
@pytest.mark.parametrize("how", ["nobody's", "group-writable", "a symlink", "a file"])
def test_a_published_folder_that_is_not_the_services_is_refused(
    tmp_path: Path, how: str, folder: str
) -> None:
    root = tmp_path / "state"
    root.mkdir(mode=0o700)
    generations = root / folder
    if how == "a symlink":
        (tmp_path / "elsewhere").mkdir()
        generations.symlink_to(tmp_path / "elsewhere")
    elif how == "a file":
        generations.write_text("")
    else:
        generations.mkdir()
        if how == "nobody's":
            os.chown(generations, NOBODY, NOBODY)
        else:
            generations.chmod(0o775)
    assert str(generations) in refusal(root)


def test_a_state_dir_of_an_older_version_and_a_symlinked_one_are_accepted(tmp_path: Path) -> None:
    older = tmp_path / "older"
    (older / "generations").mkdir(parents=True, mode=0o755)
    older.chmod(0o755)
    assert PublishedStore(older).root == older
    (tmp_path / "link").symlink_to(older)
    assert PublishedStore(tmp_path / "link").root == older


# --- never through a symlink ---------------------------------------------------------------------


def blob_of(store: PublishedStore, path: str) -> Path:
    """Where the current generation keeps the bytes of `path`."""
    manifest = json.loads((store.root / os.readlink(store.current_link)).read_bytes())
    digest = manifest["files"][path]["digest"]
    return store.blobs / digest[:2] / digest


@pytest.mark.parametrize("swap", ["blob", "blob folder", "manifest", "manifests folder"])
def test_a_symlink_in_the_published_state_is_never_followed(
    state_settings: Settings, write_post: WritePost, secret: Path, tmp_path: Path, swap: str
) -> None:
    """Even with the ownership checks passed (the service's own folder, changed behind
    its back), a symlink inside the state directory is an error, never served."""
    store = published(state_settings, write_post)
    client = create_app(state_settings).test_client()  # started before the swap
    blob = blob_of(store, "tags/boats/rss.xml")
    path = "/tags/boats/rss.xml"
    if swap == "blob":
        for file_name in (blob.name, blob.name + ".gz"):
            (blob.parent / file_name).unlink()
            (blob.parent / file_name).symlink_to(secret)
    elif swap == "blob folder":
        decoy = tmp_path / "decoy"
        decoy.mkdir()
        for file_name in (blob.name, blob.name + ".gz"):
            (decoy / file_name).symlink_to(secret)
        os.rename(blob.parent, tmp_path / "real-folder")
        blob.parent.symlink_to(decoy)
    elif swap == "manifest":
        manifest = store.root / os.readlink(store.current_link)
        manifest.rename(tmp_path / "manifest.json")
        manifest.symlink_to(tmp_path / "manifest.json")
        path = "/rss.xml"
    else:
        os.rename(store.manifests, tmp_path / "moved")
        store.manifests.symlink_to(tmp_path / "moved")
        path = "/rss.xml"
    with pytest.raises(UnsafeStateError, match="symlink is never followed"):
        client.get(path, headers={"Accept-Encoding": "gzip"})
    with pytest.raises(UnsafeStateError):
        client.get(path)
    with pytest.raises(UnsafeStateError):
        store.load_current()  # nor does the watcher read it


def test_a_digest_that_leaves_the_blobs_is_refused(
    state_settings: Settings, write_post: WritePost, tmp_path: Path
) -> None:
    store = published(state_settings, write_post)
    leak = tmp_path / "leak"
    leak.mkdir()
    for file_name in ("rss.xml", "rss.xml.gz"):
        (leak / file_name).write_bytes(SECRET)
    manifest_path = store.root / os.readlink(store.current_link)
    manifest = json.loads(manifest_path.read_text())
    escape = "../" * (len(store.blobs.relative_to(tmp_path).parts) + 1) + "leak/rss.xml"
    manifest["files"]["rss.xml"]["digest"] = escape
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(UnsafeStateError, match="not a manifest this service wrote"):
        create_app(state_settings).test_client().get("/rss.xml")
    with pytest.raises(UnsafeStateError, match="not a digest"):
        store.read_blob(escape)


@pytest.fixture
def state_settings(make_settings: MakeSettings, tmp_path: Path) -> Settings:
    return make_settings(state_dir=str(tmp_path / "state"))


# --- the real servers ----------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["granian", "gunicorn"])
@pytest.mark.parametrize("how", ["nobody's", "world-writable"])
def test_the_server_refuses_a_bad_state_dir_with_one_line(
    tmp_path: Path, content_dir: Path, write_post: WritePost, kind: str, how: str
) -> None:
    write_post("harbour.txt", post_text())
    state = tmp_path / "state"
    state.mkdir()
    if how == "nobody's":
        os.chown(state, NOBODY, NOBODY)
    else:
        state.chmod(0o777)
    server = Server(tmp_path, content_dir, via_cli=kind == "granian", state_dir=str(state))
    assert server.process.wait(30) == 2, server.errors()
    lines = server.errors().strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"feeds: configuration error: state_dir: {str(state)!r} ")
    assert ("belongs to uid 65534" if how == "nobody's" else "writable by its group or by others") in lines[0]


@pytest.fixture
def no_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "no-such-home"))
    yield


@pytest.mark.parametrize("kind", ["granian", "gunicorn"])
def test_without_a_home_the_workers_share_one_private_folder(
    tmp_path: Path, content_dir: Path, write_post: WritePost, no_home: None, kind: str
) -> None:
    """The fallback folder is made once, by the process that starts the workers: one
    watcher for all of them, and the feeds served."""
    write_post("harbour.txt", post_text(title="Served without a home"))
    server = Server(tmp_path, content_dir, via_cli=kind == "granian")
    try:
        server.wait_until_ready()
        server.wait_for("/rss.xml", "Served without a home")
        for _ in range(20):
            assert server.request("/rss.xml")[0] == 200
        time.sleep(0.5)  # a second watcher, if there were one, would have started by now
    finally:
        assert server.stop() == 0
    watchers = re.findall(r"is the watcher of (\S+)", server.errors())
    assert len(watchers) == 1, server.errors()
    root = Path(watchers[0])
    assert root.parent == Path(tempfile.gettempdir()) and root.name.startswith("feeds-")
    assert mode(root) == 0o700
    subprocess.run(["rm", "-rf", str(root)], check=True)


@pytest.mark.parametrize("kind", ["granian", "gunicorn"])
def test_the_server_never_serves_a_published_symlink(
    tmp_path: Path, content_dir: Path, write_post: WritePost, secret: Path, kind: str
) -> None:
    write_post("harbour.txt", post_text())
    state = tmp_path / "state"
    server = Server(tmp_path, content_dir, workers=1, via_cli=kind == "granian", state_dir=str(state))
    try:
        server.wait_until_ready()  # /healthz: no worker has read rss.xml yet
        blob = blob_of(PublishedStore(state), "rss.xml")
        for file_name in (blob.name, blob.name + ".gz"):
            (blob.parent / file_name).unlink()
            (blob.parent / file_name).symlink_to(secret)
        for encoding in ("identity", "gzip"):
            status, _, body = server.request("/rss.xml", headers={"Accept-Encoding": encoding})
            assert status == 500 and SECRET not in body
    finally:
        server.stop()
    assert "symlink is never followed" in server.errors()


@pytest.mark.parametrize(
    ("owner", "folder_mode", "why"),
    [
        (NOBODY, 0o755, f"belongs to uid {NOBODY}, neither root nor this service's uid 0"),
        (0, 0o775, "is writable by its group or by others without the sticky bit (mode 775)"),
        (0, 0o757, "is writable by its group or by others without the sticky bit (mode 757)"),
    ],
    ids=["nobody's", "group-writable", "world-writable"],
)
def test_a_state_dir_inside_a_folder_another_user_controls_is_refused(
    tmp_path: Path, owner: int, folder_mode: int, why: str
) -> None:
    """Another user who may rename what is in a folder above the state directory can
    replace it with one of theirs, whose feeds the service would serve."""
    shared = tmp_path / "x"
    shared.mkdir()
    state = shared / "deeper" / "state"
    state.mkdir(parents=True, mode=0o700)
    state.parent.chmod(0o755)
    shared.chmod(folder_mode)
    os.chown(shared, owner, owner)
    try:
        assert refusal(state) == (
            f"{str(state)!r} is inside {str(shared)!r}, which {why}: another user could put "
            "a state directory of theirs in its place"
        )
    finally:
        os.chown(shared, 0, 0)


def test_a_sticky_shared_folder_is_fine_above_the_state_dir(tmp_path: Path) -> None:
    """Like /tmp: others may write there, but not rename what they do not own."""
    shared = tmp_path / "sticky"
    shared.mkdir()
    shared.chmod(0o1777)
    assert PublishedStore(shared / "state").root == shared / "state"
    assert "writable by its group or by others (mode 1777)" in refusal(shared)  # never as the state dir
