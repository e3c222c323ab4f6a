"""Writing built feeds to disk so that a reader never sees a half-written file."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path

from feeds.build import Output


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


def write_outputs(out_dir: Path, outputs: Iterable[Output]) -> list[Path]:
    """Writes each output below `out_dir`, every file atomically."""
    written = []
    for output in outputs:
        path = out_dir / output.path
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, output.body)
        written.append(path)
    return written
