"""Writing built feeds to disk so that a reader never sees a half-written file."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from feeds.build import FeedDocuments

FILE_NAMES = {"rss": "rss.xml", "atom": "atom.xml", "json": "feed.json"}


def write_atomically(path: Path, data: bytes) -> None:
    """Writes a temporary file beside `path`, then renames it over `path` (atomic on POSIX)."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_documents(out_dir: Path, documents: FeedDocuments) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for kind, name in FILE_NAMES.items():
        path = out_dir / name
        write_atomically(path, getattr(documents, kind))
        written.append(path)
    return written
