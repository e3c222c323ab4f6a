"""Finding post files in the content directory, and reading one safely."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from feeds.errors import Problem


@dataclass(frozen=True)
class SourceFile:
    """One candidate post file: where it is, and what says whether it changed."""

    path: Path
    relpath: str
    size: int
    mtime_ns: int

    @property
    def signature(self) -> tuple[int, int]:
        return (self.size, self.mtime_ns)


@dataclass(frozen=True)
class Scan:
    files: tuple[SourceFile, ...]
    problems: tuple[Problem, ...]


def scan(root: Path, extensions: tuple[str, ...]) -> Scan:
    """Every post file below `root`, sorted by relative path.

    Hidden names and names starting with `_` (layouts, partials) are skipped, and so is
    any symlink whose target lies outside `root`; a symlinked folder is entered once.
    """
    real_root = Path(os.path.realpath(root))
    files: list[SourceFile] = []
    problems: list[Problem] = []
    seen_dirs = {str(real_root)}
    for entry, relpath in _walk(str(root), "", real_root, seen_dirs, problems):
        if not entry.name.lower().endswith(extensions):
            continue
        try:
            stat = entry.stat()
        except OSError as error:
            problems.append(Problem(relpath, "file", _os_reason(error)))
            continue
        files.append(SourceFile(Path(entry.path), relpath, stat.st_size, stat.st_mtime_ns))
    files.sort(key=lambda f: f.relpath)
    return Scan(tuple(files), tuple(sorted(problems)))


def _walk(
    directory: str, prefix: str, real_root: Path, seen_dirs: set[str], problems: list[Problem]
) -> Iterator[tuple[os.DirEntry[str], str]]:
    try:
        with os.scandir(directory) as listing:
            entries = sorted(listing, key=lambda e: e.name)
    except FileNotFoundError:
        return  # removed while we scanned: it simply has no posts this round
    except OSError as error:
        problems.append(Problem(prefix.rstrip("/") or ".", "directory", _os_reason(error)))
        return
    for entry in entries:
        if entry.name.startswith((".", "_")):
            continue
        relpath = prefix + entry.name
        try:
            is_link = entry.is_symlink()
            is_dir = entry.is_dir()
            is_file = entry.is_file()
        except OSError as error:
            problems.append(Problem(relpath, "file", _os_reason(error)))
            continue
        if is_link and not Path(os.path.realpath(entry.path)).is_relative_to(real_root):
            problems.append(Problem(relpath, "file", "symlink leads outside the content directory"))
            continue
        if is_dir:
            real_dir = os.path.realpath(entry.path)
            if real_dir in seen_dirs:
                continue  # a symlink loop, or a folder already read through another path
            seen_dirs.add(real_dir)
            yield from _walk(entry.path, relpath + "/", real_root, seen_dirs, problems)
        elif is_file:
            yield entry, relpath


def read_source(file: SourceFile, max_bytes: int) -> bytes:
    """The file's bytes; raises OSError, or ValueError when it is larger than `max_bytes`."""
    with open(file.path, "rb") as handle:
        data = handle.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"larger than max_post_bytes ({max_bytes} bytes)")
    return data


def _os_reason(error: OSError) -> str:
    return error.strerror or type(error).__name__
