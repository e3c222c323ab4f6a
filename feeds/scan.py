"""Finding post files in the content directory, and reading one safely.

A scan runs at every poll, over every file, so it is written for speed: one `stat`
per post file (the only system call that tells a changed file) and little else.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from feeds.errors import FeedsError, Problem


class SourceFile(NamedTuple):
    """One candidate post file: where it is, and what says whether it changed."""

    relpath: str  # relative to the content directory, with `/`
    path: str
    size: int
    mtime_ns: int


@dataclass(frozen=True)
class Scan:
    files: tuple[SourceFile, ...]
    problems: tuple[Problem, ...]


def scan(root: Path, extensions: tuple[str, ...]) -> Scan:
    """Every post file below `root`, sorted by relative path.

    Hidden names and names starting with `_` (layouts, partials) are skipped, and so is
    any symlink whose target lies outside `root`; a folder reached twice (a symlink
    loop, or a link to a folder already read) is read once, by the first path in name
    order.
    """
    real_root = os.path.realpath(root)
    inside = real_root.rstrip("/") + "/"
    files: list[SourceFile] = []
    problems: list[Problem] = []
    seen_dirs = {real_root}
    pending = [(str(root), "")]
    while pending:
        directory, prefix = pending.pop()
        try:
            with os.scandir(directory) as listing:
                entries = list(listing)
        except FileNotFoundError:
            continue  # removed while we scanned: it simply has no posts this round
        except OSError as error:
            problems.append(Problem(prefix.rstrip("/") or ".", "directory", _os_reason(error)))
            continue
        subdirectories = []
        for entry in entries:
            name = entry.name
            if name[0] in "._":
                continue
            try:
                if entry.is_file(follow_symlinks=False):  # the common case, first and short
                    if name.lower().endswith(extensions):
                        stat = entry.stat()
                        files.append(SourceFile(prefix + name, entry.path, stat.st_size, stat.st_mtime_ns))
                    continue
            except OSError as error:
                problems.append(Problem(prefix + name, "file", _os_reason(error)))
                continue
            relpath = prefix + name
            try:
                if entry.is_symlink() and not (os.path.realpath(entry.path) + "/").startswith(inside):
                    problems.append(Problem(relpath, "file", "symlink leads outside the content directory"))
                elif name.lower().endswith(extensions) and entry.is_file():
                    stat = entry.stat()
                    files.append(SourceFile(relpath, entry.path, stat.st_size, stat.st_mtime_ns))
                elif entry.is_dir():
                    subdirectories.append((relpath, entry.path))
            except OSError as error:
                problems.append(Problem(relpath, "file", _os_reason(error)))
        # Deepest-last order keeps "first path in name order" for folders reached twice.
        for relpath, path in sorted(subdirectories, reverse=True):
            real_dir = os.path.realpath(path)
            if real_dir not in seen_dirs:
                seen_dirs.add(real_dir)
                pending.append((path, relpath + "/"))
    files.sort()
    return Scan(tuple(files), tuple(sorted(problems)))


class FileChanging(FeedsError):
    """The file is not what the scan saw: it is being written, or was replaced."""


def read_source(file: SourceFile, max_bytes: int) -> bytes:
    """The file's bytes, as the scan saw them; raises OSError, ValueError when it is
    larger than `max_bytes`, or FileChanging when its size or mtime moved since the scan
    (a writer is at work: reading it now could publish half a post)."""
    try:
        fd = os.open(file.path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise FileChanging(file.relpath) from None  # removed since the scan: look again
    try:
        data = os.read(fd, max_bytes + 1)
        status = os.fstat(fd)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise ValueError(f"larger than max_post_bytes ({max_bytes} bytes)")
    if (status.st_size, status.st_mtime_ns) != (file.size, file.mtime_ns) or len(data) != file.size:
        raise FileChanging(file.relpath)
    return data


def _os_reason(error: OSError) -> str:
    return error.strerror or type(error).__name__
