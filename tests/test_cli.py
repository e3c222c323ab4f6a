"""The `feeds` command: build, check, exit codes, byte-identical output, the user's post."""

from __future__ import annotations

import io
import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from feeds import cli, scan, store
from feeds.build import FeedDocuments
from feeds.store import MANIFEST

from conftest import REPO, USERS_EXAMPLE, WritePost, post_text
from feedcheck import check_documents, strict_xml


@pytest.fixture
def config(tmp_path: Path, content_dir: Path) -> Path:
    path = tmp_path / "feeds.toml"
    path.write_text(f'base_url = "https://example.com"\ncontent_dir = "{content_dir}"\n')
    return path


def read_documents(out: Path) -> FeedDocuments:
    return FeedDocuments(
        rss=(out / "rss.xml").read_bytes(),
        atom=(out / "atom.xml").read_bytes(),
        json=(out / "feed.json").read_bytes(),
    )


def test_build_writes_three_valid_files(
    write_post: WritePost, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_post("one.txt", post_text(title="One"))
    write_post("two.md", post_text(title="Two", date="1602734331"))
    out = tmp_path / "out"
    assert cli.main(["--config", str(config), "build", "--out", str(out)]) == 0
    rss, _atom, _feed = check_documents(read_documents(out))
    assert [e.title for e in rss.entries] == ["Two", "One"]
    printed = capsys.readouterr().out.strip()
    # The site's feeds, the stylesheet, the feeds of the site's author and the OPML list.
    assert printed.startswith(f"built 8 files in {out}/: 2 files read, 2 posts used")
    assert sorted(p.name for p in out.iterdir()) == [
        ".feeds-manifest.json",
        "atom.xml",
        "authors",
        "feed.json",
        "feed.xsl",
        "feeds.opml",
        "rss.xml",
    ]


def test_content_flag_overrides_the_setting(write_post: WritePost, config: Path, tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "elsewhere.txt").write_text(post_text(title="Elsewhere"))
    write_post("here.txt", post_text(title="Here"))
    out = tmp_path / "out"
    assert cli.main(["--config", str(config), "build", "--content", str(other), "--out", str(out)]) == 0
    rss, _, _ = check_documents(read_documents(out))
    assert [e.title for e in rss.entries] == ["Elsewhere"]


def test_strict_build_fails_on_a_skipped_post(
    write_post: WritePost, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_post("good.txt", post_text())
    write_post("bad.txt", "---\ntitle: x\n---\n")
    out = tmp_path / "out"
    assert cli.main(["--config", str(config), "build", "--out", str(out)]) == 0
    assert cli.main(["--config", str(config), "build", "--strict", "--out", str(out)]) == 1
    assert "bad.txt: date: missing" in capsys.readouterr().err
    rss, _, _ = check_documents(read_documents(out))
    assert len(rss.entries) == 1


def tree(folder: Path) -> dict[str, bytes]:
    """Every file below `folder` (the manifest aside) with its bytes."""
    return {
        path.relative_to(folder).as_posix(): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }


def build_into(config: Path, out: Path) -> int:
    return cli.main(["--config", str(config), "build", "--out", str(out)])


USER_FILES = {
    "robots.txt": b"User-agent: *\n",
    "tags/README": b"mine\n",
    "tags/gardening/notes.txt": b"mine\n",
}


def test_a_build_removes_what_it_no_longer_builds_and_nothing_else(
    write_post: WritePost, tmp_path: Path, content_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "feeds.toml"
    config.write_text(f'base_url = "https://example.com"\ncontent_dir = "{content_dir}"\nitem_limit = 2\n')
    for n in range(5):
        write_post(
            f"p{n}.txt", post_text(title=f"Post {n}", date=str(1_600_000_000 + n), extra="tags: Gardening")
        )
    out = tmp_path / "public"
    assert build_into(config, out) == 0
    for name, data in USER_FILES.items():
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_bytes(data)
    assert {"tags/gardening/rss.xml", "archive/2/atom.xml", "archive/1/rss.xml"} <= set(tree(out))
    capsys.readouterr()

    for n in range(5):  # the only tag changes, and three posts go: one archive page is left
        write_post(
            f"p{n}.txt", post_text(title=f"Post {n}", date=str(1_600_000_000 + n), extra="tags: Cooking")
        )
    for n in range(2, 5):
        (content_dir / f"p{n}.txt").unlink()
    assert build_into(config, out) == 0
    fresh = tmp_path / "fresh"
    assert build_into(config, fresh) == 0
    # Exactly what a build into an empty folder gives, plus the user's own files.
    assert tree(out) == {**tree(fresh), **USER_FILES}
    assert "removed 5 files no longer built" in capsys.readouterr().out.splitlines()[0]
    assert not (out / "archive" / "2").exists()  # emptied folders the build made go too
    assert (out / "tags" / "gardening").is_dir()  # it still holds the user's notes
    assert json.loads((out / MANIFEST).read_text())["files"] == sorted(tree(fresh))
    assert not list(out.rglob("*.tmp"))


def test_a_stale_folder_the_build_made_goes_when_it_is_empty(
    write_post: WritePost, config: Path, tmp_path: Path
) -> None:
    write_post("one.txt", post_text(extra="tags: Gardening\ncategories: Outdoors"))
    out = tmp_path / "public"
    assert build_into(config, out) == 0
    write_post("one.txt", post_text())
    assert build_into(config, out) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        *(MANIFEST, "atom.xml", "authors", "feed.json", "feed.xsl", "feeds.opml", "rss.xml")
    ]


@pytest.mark.parametrize(
    "manifest",
    [None, b"not json", b'{"files": "rss.xml"}', b"[1, 2]", b"\xff\xfe", b'{"other": []}'],
    ids=["missing", "not-json", "not-a-list", "no-mapping", "not-utf8", "no-files"],
)
def test_without_a_readable_manifest_nothing_is_removed(
    write_post: WritePost,
    config: Path,
    tmp_path: Path,
    manifest: bytes | None,
    capsys: pytest.CaptureFixture[str],
) -> None:
    write_post("one.txt", post_text(extra="tags: Gardening"))
    out = tmp_path / "public"
    assert build_into(config, out) == 0
    if manifest is None:
        (out / MANIFEST).unlink()
    else:
        (out / MANIFEST).write_bytes(manifest)
    write_post("one.txt", post_text(extra="tags: Cooking"))
    assert build_into(config, out) == 0
    assert (out / "tags" / "gardening" / "rss.xml").is_file()
    assert ("unreadable" in capsys.readouterr().err) is (manifest is not None)
    assert "tags/cooking/rss.xml" in json.loads((out / MANIFEST).read_text())["files"]


def test_a_hostile_manifest_never_removes_anything_outside_the_build(
    write_post: WritePost, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_post("one.txt", post_text())
    out = tmp_path / "site" / "public"
    assert build_into(config, out) == 0
    victims = [
        tmp_path / "victim" / "rss.xml",
        tmp_path / "site" / "rss.xml",
        tmp_path / "victim" / "feed.json",
    ]
    for victim in victims:
        victim.parent.mkdir(parents=True, exist_ok=True)
        victim.write_text("keep me")
    (out / "robots.txt").write_text("keep me")
    (out / "elsewhere").symlink_to(tmp_path / "victim", target_is_directory=True)
    (out / "tags").mkdir()
    (out / "tags" / "rss.xml").symlink_to(tmp_path / "victim" / "feed.json")
    hostile = [
        "../rss.xml",
        "../../victim/rss.xml",
        "tags/../../rss.xml",
        str(tmp_path / "victim" / "rss.xml"),
        "/" + str(tmp_path / "victim" / "feed.json").lstrip("/"),
        "elsewhere/rss.xml",
        "tags/rss.xml",
        "robots.txt",
        "./robots.txt",
        "tags//rss.xml",
        "..\\rss.xml",
        7,
        None,
    ]
    (out / MANIFEST).write_text(json.dumps({"files": hostile}))
    assert build_into(config, out) == 0
    for victim in victims:
        assert victim.read_text() == "keep me", victim
    assert (out / "robots.txt").read_text() == "keep me"
    assert (out / "tags" / "rss.xml").is_symlink() and (out / "elsewhere").is_symlink()
    assert "entries that no build writes are ignored" in capsys.readouterr().err


def test_an_interrupted_build_still_knows_what_it_wrote(
    write_post: WritePost, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_post("one.txt", post_text())
    out = tmp_path / "public"
    assert build_into(config, out) == 0
    write_post("one.txt", post_text(extra="tags: Gardening"))
    real_write = store.write_atomically

    def dies_after_the_tag_feeds(path: Path, data: bytes) -> None:
        real_write(path, data)
        if path.name == "feed.json" and path.parent.name == "gardening":
            raise KeyboardInterrupt

    monkeypatch.setattr(store, "write_atomically", dies_after_the_tag_feeds)
    with pytest.raises(KeyboardInterrupt):
        build_into(config, out)
    monkeypatch.undo()
    assert (out / "tags" / "gardening" / "feed.json").is_file()
    write_post("one.txt", post_text())
    assert build_into(config, out) == 0
    assert not (out / "tags").exists()


def test_check_lists_every_problem(
    write_post: WritePost, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_post("good.txt", post_text())
    write_post("sub/bad.txt", "---\ntitle: [x]\ndate: someday\n---\n")
    write_post("worse.md", "---\n- not a mapping\n---\n")
    assert cli.main(["--config", str(config), "check"]) == 1
    assert capsys.readouterr().out.splitlines() == [
        "sub/bad.txt: date: not a date: 'someday' (use ISO 8601, RFC 822 or a Unix timestamp)",
        "sub/bad.txt: title: expected text, got a list",
        "worse.md: front matter: must be a mapping, got list",
    ]


def test_check_passes_on_clean_content(
    write_post: WritePost, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    write_post("good.txt", post_text())
    assert cli.main(["--config", str(config), "check"]) == 0
    assert capsys.readouterr().out == ""


def test_build_twice_and_shuffled_listings_give_identical_bytes(
    write_post: WritePost, config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(30):
        write_post(f"d{n % 3}/post-{n}.txt", post_text(title=f"Post {n}", date=str(1_600_000_000 + n % 7)))
    outputs = []
    real_scandir = os.scandir
    for run in range(3):
        out = tmp_path / f"out{run}"
        assert cli.main(["--config", str(config), "build", "--out", str(out)]) == 0
        outputs.append(read_documents(out))

        class Shuffled:
            rng = random.Random(run)

            def __init__(self, path: str) -> None:
                self.listing = real_scandir(path)
                self.entries = list(self.listing)
                self.rng.shuffle(self.entries)

            def __enter__(self) -> list[os.DirEntry[str]]:
                return self.entries

            def __exit__(self, *exc: object) -> None:
                self.listing.close()

        monkeypatch.setattr(scan.os, "scandir", Shuffled)
    assert outputs[0] == outputs[1] == outputs[2]


def test_output_does_not_depend_on_locale_or_timezone(
    write_post: WritePost, config: Path, tmp_path: Path
) -> None:
    write_post("one.txt", post_text())
    outputs = []
    for env in ({"LC_ALL": "C", "TZ": "UTC"}, {"LC_ALL": "C.UTF-8", "TZ": "Asia/Tokyo"}):
        out = tmp_path / env["TZ"].replace("/", "-")
        feeds_command = Path(sys.executable).with_name("feeds")
        subprocess.run(
            [str(feeds_command), "--config", str(config), "build", "--out", str(out)],
            check=True,
            capture_output=True,
            env={**os.environ, **env},
        )
        outputs.append(read_documents(out))
    assert outputs[0] == outputs[1]


def test_the_users_example_post(content_dir: Path, config: Path, tmp_path: Path) -> None:
    shutil.copy(USERS_EXAMPLE, content_dir)
    out = tmp_path / "out"
    assert cli.main(["--config", str(config), "build", "--strict", "--out", str(out)]) == 0
    documents = read_documents(out)
    rss, atom, feed = check_documents(documents)
    item = strict_xml(documents.rss).find("channel/item")
    assert item is not None
    assert item.findtext("pubDate") == "Thu, 15 Oct 2020 03:58:50 +0000"
    title = item.findtext("title")
    assert title is not None and title.startswith("John Legend") and title == title.strip()
    enclosure = item.find("enclosure")
    assert enclosure is not None and enclosure.get("type") == "image/jpeg"
    assert enclosure.get("url", "").startswith("https://www.gannett-cdn.com/presto/2020/10/15/")
    assert rss.entries[0].enclosures[0].href == enclosure.get("url")
    assert atom.entries[0].enclosures[0].href == enclosure.get("url")
    assert feed["items"][0]["image"] == enclosure.get("url")


def test_bundled_examples_build_cleanly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(REPO)
    out = tmp_path / "out"
    assert cli.main(["build", "--strict", "--out", str(out)]) == 0
    rss, _, _ = check_documents(read_documents(out))
    assert len(rss.entries) == 9  # ten posts, one of them a draft; _layouts/ is skipped


def test_progress_bar_only_on_a_terminal_and_for_long_scans() -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    pipe, terminal = io.StringIO(), Terminal()
    for stream in (pipe, terminal):
        with cli._ProgressBar(stream) as bar:
            for done in range(1, 2001):
                bar.update(done, 2000)
    assert pipe.getvalue() == ""
    assert "2000/2000" in terminal.getvalue()
    assert terminal.getvalue().endswith("\r\x1b[K")
    short = Terminal()
    with cli._ProgressBar(short) as bar:
        bar.update(10, 10)
    assert short.getvalue() == ""


def test_a_post_that_only_lost_its_content_is_logged_as_such(
    write_post: WritePost, config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It is in the feeds with its summary: "skipped" would send its author looking for a
    post that is not missing. --strict still fails on it, as its help says."""
    config.write_text(config.read_text() + "max_render_bytes = 100\n")
    write_post("long.txt", post_text(body="word " * 100))
    write_post("bad.txt", "---\ntitle: x\n---\n")
    out = tmp_path / "out"
    assert cli.main(["--config", str(config), "build", "--strict", "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert "lost content long.txt: content: left out of the feeds" in err
    assert "skipped bad.txt: date: missing" in err and "skipped long.txt" not in err


def test_build_help_names_what_it_writes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["build", "--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "exit 1 when any post was skipped or lost its content" in shown
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    shown = " ".join(capsys.readouterr().out.split())
    assert "write the site's, tags', categories' and archive feeds and feed.xsl" in shown


def test_the_shipped_config_describes_the_default_state_dir() -> None:
    text = " ".join(line.lstrip("# ") for line in (REPO / "config" / "feeds.toml").read_text().splitlines())
    assert "~/.local/state/feeds/<digest>" in text and "system's temporary directory named" not in text
