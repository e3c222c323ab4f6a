"""Finding post files below the content directory, and reading one with a size limit."""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
import types
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from feeds.errors import Problem
from feeds.scan import FileChanging, SourceFile, read_source, scan

EXTENSIONS = (".md", ".markdown", ".txt")
WritePost = Callable[..., Path]


def relpaths(root: Path, extensions: tuple[str, ...] = EXTENSIONS) -> list[str]:
    return [file.relpath for file in scan(root, extensions).files]


def test_finds_files_recursively_sorted_by_relpath(content_dir: Path, write_post: WritePost) -> None:
    for name in ["b/d/e.markdown", "b-side.md", "a.md", "b/c.txt", "zeta/alpha.md"]:
        write_post(name)
    # '-' sorts before '/', so the flat file comes before the folder's contents.
    assert relpaths(content_dir) == ["a.md", "b-side.md", "b/c.txt", "b/d/e.markdown", "zeta/alpha.md"]


def test_only_configured_extensions_case_insensitive(content_dir: Path, write_post: WritePost) -> None:
    for name in ["POST.TXT", "Notes.Md", "page.html", "image.jpg", "README", "archive.md.bak", "x.txt"]:
        write_post(name, "hello")
    assert relpaths(content_dir, (".txt",)) == ["POST.TXT", "x.txt"]
    assert relpaths(content_dir, (".md", ".txt")) == ["Notes.Md", "POST.TXT", "x.txt"]


def test_skips_hidden_and_underscore_names(content_dir: Path, write_post: WritePost) -> None:
    for name in [
        ".git/x.md",
        ".hidden.md",
        "_layouts/post.txt",
        "_draft.md",
        "posts/.swap.md",
        "posts/_partial.md",
        "posts/_inc/deep.md",
        "posts/kept.md",
        "kept.txt",
    ]:
        write_post(name, "x")
    result = scan(content_dir, EXTENSIONS)
    assert [file.relpath for file in result.files] == ["kept.txt", "posts/kept.md"]
    assert result.problems == ()


def test_size_and_mtime_match_stat(content_dir: Path, write_post: WritePost) -> None:
    path = write_post("dir/post.md", "a" * 1234)
    os.utime(path, ns=(1_600_000_000_123_456_789, 1_602_734_330_453_859_000))
    (file,) = scan(content_dir, EXTENSIONS).files
    stat = os.stat(path)
    assert file.path == str(path)
    assert file.relpath == "dir/post.md"
    assert file.size == stat.st_size == 1234
    assert file.mtime_ns == stat.st_mtime_ns == 1_602_734_330_453_859_000
    assert (file.size, file.mtime_ns) == (1234, 1_602_734_330_453_859_000)


def test_a_scan_runs_no_python_function_per_post_file(content_dir: Path, write_post: WritePost) -> None:
    """The scan runs at every poll over every file: per regular post file it calls only
    built-in functions (the lstat, the string and tuple operations), so its time stays
    near that of `os.scandir` plus one stat per file. Python-level calls are per folder."""
    for number in range(300):
        write_post(f"{('news', 'notes', 'notes/deep')[number % 3]}/post-{number:03d}.md", "x")
    calls: list[str] = []

    def profile(frame: types.FrameType, event: str, arg: object) -> None:
        if event == "call":
            calls.append(frame.f_code.co_name)

    sys.setprofile(profile)
    try:
        result = scan(content_dir, EXTENSIONS)
    finally:
        sys.setprofile(None)
    assert len(result.files) == 300 and result.problems == ()
    assert len(calls) < 60, sorted(set(calls))


def test_empty_content_dir(content_dir: Path) -> None:
    result = scan(content_dir, EXTENSIONS)
    assert result.files == ()
    assert result.problems == ()


# --- symlinks -------------------------------------------------------------------------


def test_symlink_to_file_outside_is_a_problem(
    content_dir: Path, tmp_path: Path, write_post: WritePost
) -> None:
    secret = tmp_path / "secret.md"
    secret.write_text("private")
    (content_dir / "leak.md").symlink_to(secret)
    write_post("ok.md")
    result = scan(content_dir, EXTENSIONS)
    assert [file.relpath for file in result.files] == ["ok.md"]
    assert len(result.problems) == 1
    problem = result.problems[0]
    assert problem.path == "leak.md"
    assert "outside" in problem.reason


def test_symlink_to_file_inside_is_listed(content_dir: Path, write_post: WritePost) -> None:
    real = write_post("posts/real.md")
    (content_dir / "alias.md").symlink_to(Path("posts") / "real.md")
    result = scan(content_dir, EXTENSIONS)
    assert [file.relpath for file in result.files] == ["alias.md", "posts/real.md"]
    assert result.problems == ()
    alias = result.files[0]
    # Read through its target, opened without following a link: the link itself could
    # be swapped for one to elsewhere between the scan and the read.
    assert alias.path == os.path.realpath(real)
    assert (alias.size, alias.inode) == (real.stat().st_size, real.stat().st_ino)


def test_symlink_loop_terminates_and_lists_each_file_once(content_dir: Path, write_post: WritePost) -> None:
    write_post("a/post.md")
    write_post("top.md")
    (content_dir / "a" / "loop").symlink_to("..")  # a/loop -> the content directory itself
    (content_dir / "a" / "self").symlink_to(".")  # a/self -> a
    result = scan(content_dir, EXTENSIONS)
    assert [file.relpath for file in result.files] == ["a/post.md", "top.md"]
    assert result.problems == ()


def test_mutual_directory_links_list_each_real_file_once(content_dir: Path, write_post: WritePost) -> None:
    write_post("a/one.md")
    write_post("b/two.md")
    (content_dir / "a" / "to-b").symlink_to(Path("..") / "b")
    (content_dir / "b" / "to-a").symlink_to(Path("..") / "a")
    result = scan(content_dir, EXTENSIONS)
    real = sorted(os.path.realpath(file.path) for file in result.files)
    assert real == sorted(
        [os.path.realpath(content_dir / "a/one.md"), os.path.realpath(content_dir / "b/two.md")]
    )
    assert result.problems == ()


def test_directory_symlink_outside_is_not_entered(
    content_dir: Path, tmp_path: Path, write_post: WritePost
) -> None:
    elsewhere = tmp_path / "elsewhere"
    (elsewhere / "deep").mkdir(parents=True)
    (elsewhere / "x.md").write_text("x")
    (elsewhere / "deep" / "y.md").write_text("y")
    (content_dir / "ext").symlink_to(elsewhere, target_is_directory=True)
    write_post("in.md")
    result = scan(content_dir, EXTENSIONS)
    assert [file.relpath for file in result.files] == ["in.md"]
    assert [problem.path for problem in result.problems] == ["ext"]
    assert "outside" in result.problems[0].reason


def test_content_dir_given_through_a_symlink(
    tmp_path: Path, content_dir: Path, write_post: WritePost
) -> None:
    write_post("a.md")
    (content_dir / "alias.md").symlink_to("a.md")
    link = tmp_path / "link-to-content"
    link.symlink_to(content_dir, target_is_directory=True)
    result = scan(link, EXTENSIONS)
    assert [file.relpath for file in result.files] == ["a.md", "alias.md"]
    assert result.problems == ()


def test_file_symlink_loop_is_a_problem(content_dir: Path, write_post: WritePost) -> None:
    # An OSError that happens even as root: a symlink that points at itself.
    (content_dir / "self.md").symlink_to("self.md")
    write_post("ok.md")
    result = scan(content_dir, EXTENSIONS)
    assert [file.relpath for file in result.files] == ["ok.md"]
    assert result.problems == (Problem("self.md", "file", os.strerror(errno.ELOOP)),)


def test_a_folder_swapped_for_a_link_outside_after_listing_is_not_entered(
    content_dir: Path, tmp_path: Path, write_post: WritePost, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_post("sub/inside.md")
    write_post("top.md")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "secret.md").write_text("secret")
    real_scandir = os.scandir
    listed: list[object] = []

    def scandir_then_swap(path: object) -> contextlib.AbstractContextManager[Iterator[os.DirEntry[str]]]:
        with real_scandir(path) as listing:  # type: ignore[call-overload]
            entries = list(listing)
        if not listed:  # the content directory was listed, "sub" is not yet entered
            (content_dir / "sub").rename(tmp_path / "sub.away")
            (content_dir / "sub").symlink_to(elsewhere, target_is_directory=True)
        listed.append(path)
        return contextlib.nullcontext(iter(entries))

    with monkeypatch.context() as patch:
        patch.setattr(os, "scandir", scandir_then_swap)
        result = scan(content_dir, EXTENSIONS)
    assert [file.relpath for file in result.files] == ["top.md"]
    assert len(listed) == 1  # the link was never listed
    assert result.problems == ()  # replaced while scanned: the next scan judges the link


def test_a_fifo_named_like_a_post_is_not_listed(content_dir: Path, write_post: WritePost) -> None:
    os.mkfifo(content_dir / "pipe.md")
    (content_dir / "alias.md").symlink_to("pipe.md")
    write_post("post.md")
    result = scan(content_dir, EXTENSIONS)
    assert [file.relpath for file in result.files] == ["post.md"]
    assert result.problems == ()


def test_a_file_renamed_over_another_with_the_same_size_and_mtime_is_a_change(
    content_dir: Path, write_post: WritePost, tmp_path: Path
) -> None:
    path = write_post("post.md", "first")
    (before,) = scan(content_dir, EXTENSIONS).files
    other = tmp_path / "other.md"
    other.write_text("other")
    os.utime(other, ns=(before.mtime_ns, before.mtime_ns))
    os.replace(other, path)
    (after,) = scan(content_dir, EXTENSIONS).files
    assert (after.size, after.mtime_ns) == (before.size, before.mtime_ns)
    assert after != before


# --- unreadable folders ---------------------------------------------------------------


def test_unreadable_subdirectory_gives_a_problem(
    content_dir: Path, write_post: WritePost, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_post("locked/deeper/hidden.md")
    write_post("open/fine.md")
    write_post("top.md")
    real_open = os.open

    def open_denying(path: str, flags: int, *args: int, **kwargs: int) -> int:
        # Root cannot be denied a folder by its mode: the kernel's answer is injected.
        if path == "locked" and flags & os.O_DIRECTORY:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)
        return real_open(path, flags, *args, **kwargs)

    with monkeypatch.context() as patch:
        patch.setattr(os, "open", open_denying)
        result = scan(content_dir, EXTENSIONS)
    assert [file.relpath for file in result.files] == ["open/fine.md", "top.md"]
    assert result.problems == (Problem("locked", "directory", "Permission denied"),)


def test_unreadable_root_gives_a_problem_named_dot(
    content_dir: Path, write_post: WritePost, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_post("a.md")

    def scandir(path: str) -> object:
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), path)

    with monkeypatch.context() as patch:
        patch.setattr(os, "scandir", scandir)
        result = scan(content_dir, EXTENSIONS)
    assert result.files == ()
    assert result.problems == (Problem(".", "directory", "Permission denied"),)


# --- read_source ----------------------------------------------------------------------


def source(path: Path) -> SourceFile:
    stat = path.stat()
    return SourceFile(path.name, str(path), stat.st_size, stat.st_mtime_ns, stat.st_dev, stat.st_ino)


def test_read_source_returns_the_bytes(content_dir: Path, write_post: WritePost) -> None:
    data = "---\ntitle: Café\n---\nbody\r\n".encode() + b"\xff\x00"
    path = write_post("post.md", data)
    assert read_source(source(path), 1000) == data


def test_read_source_exactly_at_the_limit(content_dir: Path, write_post: WritePost) -> None:
    path = write_post("post.md", b"x" * 100)
    assert read_source(source(path), 100) == b"x" * 100


def test_read_source_larger_than_the_limit(content_dir: Path, write_post: WritePost) -> None:
    path = write_post("post.md", b"x" * 101)
    with pytest.raises(ValueError, match="max_post_bytes") as caught:
        read_source(source(path), 100)
    assert "100" in str(caught.value)


def test_read_source_reads_what_scan_found(content_dir: Path, write_post: WritePost) -> None:
    write_post("p.txt", "hello")
    (file,) = scan(content_dir, EXTENSIONS).files
    assert read_source(file, 5) == b"hello"
    with pytest.raises(ValueError, match="max_post_bytes"):
        read_source(file, 4)


def test_read_source_of_a_file_removed_since_the_scan_says_it_is_changing(tmp_path: Path) -> None:
    gone = SourceFile("gone.md", str(tmp_path / "gone.md"), 1, 1, 1, 1)
    with pytest.raises(FileChanging):
        read_source(gone, 100)


def test_read_source_of_a_file_changed_since_the_scan_says_it_is_changing(tmp_path: Path) -> None:
    path = tmp_path / "grown.md"
    path.write_bytes(b"first")
    scanned = source(path)
    path.write_bytes(b"first and more")
    with pytest.raises(FileChanging):
        read_source(scanned, 100)


def test_read_source_refuses_a_link_swapped_in_with_the_same_size_and_mtime(
    content_dir: Path, write_post: WritePost, tmp_path: Path
) -> None:
    path = write_post("post.md", "original")
    secret = tmp_path / "secret.md"
    secret.write_text("secret!!")
    status = path.stat()
    os.utime(secret, ns=(status.st_mtime_ns, status.st_mtime_ns))
    (file,) = scan(content_dir, EXTENSIONS).files
    path.unlink()
    path.symlink_to(secret)
    with pytest.raises(FileChanging):
        read_source(file, 100)


def test_read_source_refuses_another_file_renamed_over_it(
    content_dir: Path, write_post: WritePost, tmp_path: Path
) -> None:
    path = write_post("post.md", "original")
    (file,) = scan(content_dir, EXTENSIONS).files
    other = tmp_path / "other.md"
    other.write_text("imposter")
    os.utime(other, ns=(file.mtime_ns, file.mtime_ns))
    os.replace(other, path)
    with pytest.raises(FileChanging):
        read_source(file, 100)


def test_read_source_of_a_fifo_swapped_in_returns_at_once(content_dir: Path, write_post: WritePost) -> None:
    path = write_post("post.md", "original")
    (file,) = scan(content_dir, EXTENSIONS).files
    path.unlink()
    os.mkfifo(path)
    outcome: list[BaseException] = []

    def read() -> None:
        try:
            read_source(file, 100)
        except BaseException as error:  # reported to the test below
            outcome.append(error)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(5)
    try:
        assert not reader.is_alive(), "read_source is stuck opening a FIFO"
    finally:
        if reader.is_alive():  # give the blocked reader a writer, so the thread can end
            os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
            reader.join(5)
    assert [type(error) for error in outcome] == [FileChanging]
