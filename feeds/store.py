"""Writing built feeds to disk so that a reader never sees a half-written file, and
removing the files an earlier build wrote that this one no longer produces."""

from __future__ import annotations

import json
import logging
import stat
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from feeds.build import FEED_FILES, Output
from feeds.files import write_atomically
from feeds.opml import OPML_PATH
from feeds.xmlfeeds import STYLESHEET_PATH

log = logging.getLogger("feeds.store")

# The record, in the output folder, of the files the last build wrote there: the next
# build removes those it no longer produces, and nothing else.
MANIFEST = ".feeds-manifest.json"
# The only file names a build writes. A manifest entry with any other name is never
# removed, so a corrupt or edited manifest cannot take a user's robots.txt or README.
OUTPUT_NAMES = frozenset({*FEED_FILES.values(), STYLESHEET_PATH.rpartition("/")[2], OPML_PATH})


@dataclass(frozen=True)
class Written:
    """What `write_outputs` did below the output folder."""

    paths: tuple[Path, ...]  # every file written, in the order of the outputs
    removed: tuple[Path, ...]  # files of an earlier build that this one no longer produces


def write_outputs(out_dir: Path, outputs: Iterable[Output]) -> Written:
    """Writes each output below `out_dir`, every file atomically, then removes the files
    the previous build listed in its manifest that this build does not produce (and the
    folders that leaves empty), and writes this build's manifest last.

    Before any output is written, the manifest lists the previous build's files and this
    build's, so a build stopped midway leaves no file the next one would not know it wrote.
    A missing or unreadable manifest removes nothing."""
    outputs = list(outputs)
    out_dir.mkdir(parents=True, exist_ok=True)
    earlier = read_manifest(out_dir)
    produced = {output.path for output in outputs}
    if not produced <= earlier:
        write_atomically(out_dir / MANIFEST, manifest_bytes(earlier | produced))
    written = []
    for output in outputs:
        path = out_dir / output.path
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, output.body)
        written.append(path)
    removed = [out_dir / name for name in sorted(earlier - produced) if _remove_stale(out_dir, name)]
    write_atomically(out_dir / MANIFEST, manifest_bytes(produced))
    return Written(tuple(written), tuple(removed))


def manifest_bytes(paths: Iterable[str]) -> bytes:
    return (json.dumps({"files": sorted(paths)}, ensure_ascii=False, indent=0) + "\n").encode()


def read_manifest(out_dir: Path) -> set[str]:
    """The output paths the manifest in `out_dir` lists, keeping only those a build can
    have written: relative, with no `.` or `..` step, ending in a name a build writes.
    An empty set when there is no manifest or it cannot be read."""
    path = out_dir / MANIFEST
    try:
        listed = json.loads(path.read_bytes())["files"]
        if not isinstance(listed, list):
            raise TypeError(f"'files' is a {type(listed).__name__}, not a list")
    except FileNotFoundError:
        return set()
    except (OSError, ValueError, TypeError, KeyError) as error:
        log.warning("%s: unreadable (%s): no earlier output is removed", path, _reason(error))
        return set()
    kept = {entry for entry in listed if isinstance(entry, str) and _is_output_path(entry)}
    if len(kept) < len(listed):
        log.warning("%s: %d entries that no build writes are ignored", path, len(listed) - len(kept))
    return kept


def _is_output_path(entry: str) -> bool:
    parts = entry.split("/")
    return (
        not any(part in ("", ".", "..") or "\\" in part or "\0" in part for part in parts)
        and parts[-1] in OUTPUT_NAMES
    )


def _remove_stale(out_dir: Path, name: str) -> bool:
    """Removes the earlier output `name` and the folders that leaves empty; True when a
    file was removed. Only a regular file whose folder really lies inside `out_dir` (no
    symlinked folder leading out) is touched; a folder goes only once it is empty."""
    root = out_dir.resolve()
    path = out_dir / name
    try:
        if not path.parent.resolve().is_relative_to(root) or not stat.S_ISREG(path.lstat().st_mode):
            return False
        path.unlink()
    except FileNotFoundError:
        return False
    except OSError as error:
        log.warning("%s: an earlier output that could not be removed: %s", path, error.strerror or error)
        return False
    folder = path.parent
    while folder.resolve() != root:
        try:
            folder.rmdir()  # fails on a folder that still holds anything, a user's file included
        except OSError:
            break
        folder = folder.parent
    return True


def _reason(error: Exception) -> str:
    if isinstance(error, KeyError):
        return f"no {error} key"
    return str(error) or type(error).__name__
