"""Finding post files in the content directory, and reading one safely.

A scan runs at every poll, over every file, so it is written for speed: one `stat`
per post file (the only system call that tells a changed file) and little else.

Nothing below the content directory is trusted to stay put: a folder is opened one
name at a time without following a symlink (so one swapped for a link after it was
listed cannot lead outside), and a file is read only when it is still the very file the
scan saw (same device, inode, size and modification time), opened without following a
link and without blocking (so a FIFO named like a post cannot stall the reader).
"""

from __future__ import annotations

import errno
import operator
import os
import stat
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from feeds.errors import FeedsError, Problem

_DIRECTORY_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: opening a FIFO for reading would otherwise wait for a writer, forever.
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# What an open or a folder walk meets when a name was removed or replaced since the
# scan: a link (ELOOP under O_NOFOLLOW), a file where a folder was, a socket.
_REPLACED = frozenset({errno.ENOENT, errno.ELOOP, errno.ENOTDIR, errno.ENXIO})


class SourceFile(NamedTuple):
    """One candidate post file: where to read it, and what says whether it changed.

    The device and inode tell a file renamed over another apart even when its size and
    mtime are the same, and let a read refuse anything but the file the scan saw.
    """

    relpath: str  # relative to the content directory, with `/`
    path: str  # where it is read from: for a symlink, its target inside the content directory
    size: int
    mtime_ns: int
    dev: int
    inode: int


_new_tuple = tuple.__new__
_relpath = operator.itemgetter(0)


@dataclass(frozen=True)
class Scan:
    files: tuple[SourceFile, ...]
    problems: tuple[Problem, ...]


def scan(root: Path, extensions: tuple[str, ...]) -> Scan:
    """Every post file below `root`, sorted by relative path.

    Hidden names and names starting with `_` (layouts, partials) are skipped, and so is
    any symlink whose target lies outside `root`, or is not a regular file or a folder;
    a folder reached twice (a symlink loop, or a link to a folder already read) is read
    once, by the first path in name order. A symlink inside is read through its target.
    """
    real_root = os.path.realpath(root)
    inside = real_root.rstrip("/") + "/"
    try:
        root_fd = os.open(real_root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        return Scan((), ())  # unmounted or not yet there: no posts this round
    except OSError as error:
        return Scan((), (Problem(".", "directory", _os_reason(error)),))
    files: list[SourceFile] = []
    problems: list[Problem] = []
    seen_dirs = {real_root}
    # A folder to list: its path as the posts name it, their relpath prefix, and its real
    # path (no symlink in it when it was resolved), by which it is opened.
    pending = [(str(root), "", real_root)]
    try:
        while pending:
            directory, prefix, real_dir = pending.pop()
            try:
                fd = _open_folder(root_fd, _parts(real_dir, inside))
            except OSError as error:
                if error.errno not in _REPLACED:  # else: removed or replaced since it was listed
                    problems.append(Problem(prefix.rstrip("/") or ".", "directory", _os_reason(error)))
                continue
            try:
                subdirectories = _list(
                    fd, root_fd, (directory, prefix, real_dir), inside, extensions, files, problems
                )
            except OSError as error:
                problems.append(Problem(prefix.rstrip("/") or ".", "directory", _os_reason(error)))
                continue
            finally:
                os.close(fd)
            # Deepest-last order keeps "first path in name order" for folders reached twice.
            for relpath, path, real in sorted(subdirectories, reverse=True):
                if real not in seen_dirs:
                    seen_dirs.add(real)
                    pending.append((path, relpath + "/", real))
    finally:
        os.close(root_fd)
    files.sort(key=_relpath)  # relpaths are unique: comparing them alone is enough, and faster
    return Scan(tuple(files), tuple(sorted(problems)))


def _list(
    fd: int,
    root_fd: int,
    folder: tuple[str, str, str],
    inside: str,
    extensions: tuple[str, ...],
    files: list[SourceFile],
    problems: list[Problem],
) -> list[tuple[str, str, str]]:
    """Adds the post files of the open folder `fd` to `files`; returns its subfolders.

    Written for the common case, a regular post file: one `d_type` test, one suffix
    test and one `lstat` (through the folder's descriptor) per file, and no call of a
    Python function; the rarer kinds of entry take the longer paths."""
    directory, prefix, real_dir = folder
    subdirectories: list[tuple[str, str, str]] = []
    with os.scandir(fd) as listing:
        for entry in listing:
            name = entry.name
            if name[0] in "._":
                continue
            try:
                if entry.is_file(follow_symlinks=False):
                    if name.endswith(extensions) or name.lower().endswith(extensions):
                        status = entry.stat(follow_symlinks=False)
                        if stat.S_ISREG(status.st_mode):  # else replaced since it was listed
                            # tuple.__new__ skips the NamedTuple's Python-level __new__.
                            files.append(
                                _new_tuple(
                                    SourceFile,
                                    (
                                        prefix + name,
                                        f"{directory}/{name}",
                                        status.st_size,
                                        status.st_mtime_ns,
                                        status.st_dev,
                                        status.st_ino,
                                    ),
                                )
                            )
                elif entry.is_symlink():
                    _link(entry, root_fd, folder, inside, extensions, files, subdirectories, problems)
                elif entry.is_dir(follow_symlinks=False):
                    real = f"{real_dir.rstrip('/')}/{name}"
                    subdirectories.append((prefix + name, f"{directory}/{name}", real))
            except FileNotFoundError:
                continue  # removed since it was listed, or a dangling link: no post
            except OSError as error:
                problems.append(Problem(prefix + name, "file", _os_reason(error)))
    return subdirectories


def _link(
    entry: os.DirEntry[str],
    root_fd: int,
    folder: tuple[str, str, str],
    inside: str,
    extensions: tuple[str, ...],
    files: list[SourceFile],
    subdirectories: list[tuple[str, str, str]],
    problems: list[Problem],
) -> None:
    """A symlink in a listed folder: its target, when it lies inside the content
    directory, is a post file or a folder to enter."""
    directory, prefix, real_dir = folder
    name = entry.name
    relpath = prefix + name
    target = os.path.realpath(os.path.join(real_dir, name))
    if not (target + "/").startswith(inside):
        problems.append(Problem(relpath, "file", "symlink leads outside the content directory"))
        return
    status = _stat_below(root_fd, _parts(target, inside))
    if stat.S_ISREG(status.st_mode) and name.lower().endswith(extensions):
        files.append(_source(relpath, target, status))
    elif stat.S_ISDIR(status.st_mode):
        subdirectories.append((relpath, f"{directory}/{name}", target))
    elif stat.S_ISLNK(status.st_mode):  # realpath stops resolving at a loop
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP))


def _source(relpath: str, path: str, status: os.stat_result) -> SourceFile:
    return SourceFile(relpath, path, status.st_size, status.st_mtime_ns, status.st_dev, status.st_ino)


def _parts(real_path: str, inside: str) -> list[str]:
    """The names leading from the content directory to `real_path`, which lies inside it."""
    rest = real_path[len(inside) :]
    return rest.split("/") if rest else []


def _open_folder(root_fd: int, names: Sequence[str]) -> int:
    """The folder at `names` below the open root, entered one name at a time and never
    through a symlink: a folder swapped for a link to elsewhere fails with ELOOP."""
    fd = os.open(".", _DIRECTORY_FLAGS, dir_fd=root_fd)
    try:
        for name in names:
            inner = os.open(name, _DIRECTORY_FLAGS, dir_fd=fd)
            os.close(fd)
            fd = inner
    except BaseException:
        os.close(fd)
        raise
    return fd


def _stat_below(root_fd: int, names: Sequence[str]) -> os.stat_result:
    """`lstat` of the entry at `names` below the open root, reached without a symlink."""
    if not names:
        return os.fstat(root_fd)
    fd = _open_folder(root_fd, names[:-1])
    try:
        return os.stat(names[-1], dir_fd=fd, follow_symlinks=False)
    finally:
        os.close(fd)


class FileChanging(FeedsError):
    """The file is not what the scan saw: it is being written, or was replaced."""


def read_source(file: SourceFile, max_bytes: int) -> bytes:
    """The file's bytes, as the scan saw them; raises OSError, ValueError when it is
    larger than `max_bytes`, or FileChanging when it is no longer the regular file the
    scan saw (another inode, a link, a FIFO) or its size or mtime moved since the scan
    (a writer is at work: reading it now could publish half a post)."""
    try:
        fd = os.open(file.path, _FILE_FLAGS)
    except OSError as error:
        if error.errno in _REPLACED:
            raise FileChanging(file.relpath) from None  # removed or replaced since the scan
        raise
    try:
        before = os.fstat(fd)
        seen = (file.dev, file.inode, file.size, file.mtime_ns)
        if not stat.S_ISREG(before.st_mode) or _identity(before) != seen:
            raise FileChanging(file.relpath)
        data = os.read(fd, min(file.size, max_bytes) + 1)
        after = os.fstat(fd)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ValueError(f"larger than max_post_bytes ({max_bytes} bytes)")
    if _identity(after) != seen or len(data) != file.size:
        raise FileChanging(file.relpath)
    return data


def _identity(status: os.stat_result) -> tuple[int, int, int, int]:
    return status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns


def _os_reason(error: OSError) -> str:
    return error.strerror or type(error).__name__
