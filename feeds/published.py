"""The state directory the watcher publishes into and every web worker serves from.

Each successful build that changed something becomes an immutable generation folder;
a `current` symlink, replaced atomically, names the one in service. A worker loads a
whole generation at once, so it never mixes the files of two builds, and every worker
(and every instance over the same settings) serves the same bytes.

    <state>/generations/000042-<digest>/{rss.xml,rss.xml.gz,...,tags/c++/rss.xml,...,build.json}
    <state>/current -> generations/000042-<digest>
    <state>/health.json
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feeds.config import Settings
from feeds.store import write_atomically

KEEP_GENERATIONS = 3  # older ones are pruned; a worker still loading one retries


def default_state_dir(settings: Settings) -> Path:
    """A folder named after the settings, so that every worker (and every instance
    started with the same settings on this machine) finds the same one."""
    if settings.state_dir:
        return Path(settings.state_dir).absolute()
    digest = hashlib.sha256(repr(settings).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"feeds-{os.getuid()}-{digest}"


@dataclass(frozen=True)
class Generation:
    name: str
    files: Mapping[str, bytes]
    meta: Mapping[str, Any]


def digest_of(meta: Mapping[str, Any]) -> str:
    """A short tag for a generation's name, from what it describes."""
    return hashlib.blake2b(json.dumps(meta, sort_keys=True).encode(), digest_size=8).hexdigest()


class PublishedStore:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.generations = root / "generations"
        self.current_link = root / "current"
        self.health_path = root / "health.json"
        self.generations.mkdir(parents=True, exist_ok=True)

    def current_name(self) -> str | None:
        try:
            return os.path.basename(os.readlink(self.current_link))
        except FileNotFoundError:
            return None

    def publish(
        self, files: Mapping[str, bytes], meta: Mapping[str, Any], current_files: Mapping[str, bytes]
    ) -> str | None:
        """Makes `files` the current generation; None when they equal `current_files`,
        the files of the generation in service (the caller has them in memory). A file
        whose bytes are the very object of the current generation is linked, not
        written again: one edit rewrites only the documents it changed."""
        if files == current_files:
            return None
        current = self.current_name()
        number = int(current.split("-")[0]) + 1 if current else 1
        name = f"{number:06d}-{digest_of(meta)}"
        for leftover in self.generations.glob(".staging-*"):
            shutil.rmtree(leftover, ignore_errors=True)  # from a publisher killed mid-write
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.generations))
        for file_name, data in files.items():
            target = staging / file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            if current and current_files.get(file_name) is data:
                try:
                    os.link(self.generations / current / file_name, target)
                    continue
                except OSError:
                    pass  # pruned or on another file system: write it
            target.write_bytes(data)
        (staging / "build.json").write_text(json.dumps(meta, sort_keys=True))
        staging.chmod(0o755)
        os.replace(staging, self.generations / name)
        link = self.root / f".current-{os.getpid()}"
        link.unlink(missing_ok=True)
        link.symlink_to(Path("generations") / name)
        os.replace(link, self.current_link)
        self._prune(keep=name)
        return name

    def load(self, name: str) -> Generation:
        """Reads one generation; raises FileNotFoundError if it was pruned meanwhile."""
        folder = self.generations / name
        files = {
            path.relative_to(folder).as_posix(): path.read_bytes()
            for path in folder.rglob("*")
            if path.is_file() and path.name != "build.json"
        }
        meta = json.loads((folder / "build.json").read_text())
        return Generation(name, files, meta)

    def read_meta(self, name: str) -> dict[str, Any]:
        """A generation's build.json; raises FileNotFoundError if it was pruned."""
        meta: dict[str, Any] = json.loads((self.generations / name / "build.json").read_text())
        return meta

    def read_file(self, name: str, file_name: str) -> bytes:
        """One file of a generation; raises FileNotFoundError if it was pruned."""
        return (self.generations / name / file_name).read_bytes()

    def load_current(self) -> Generation | None:
        for _ in range(5):
            name = self.current_name()
            if name is None:
                return None
            try:
                return self.load(name)
            except FileNotFoundError:
                continue  # replaced and pruned between readlink and read: look again
        raise RuntimeError(f"{self.root}: the current generation keeps disappearing")

    def write_health(self, health: Mapping[str, Any]) -> None:
        write_atomically(self.health_path, json.dumps(health, sort_keys=True).encode())

    def read_health(self) -> dict[str, Any] | None:
        try:
            health: dict[str, Any] = json.loads(self.health_path.read_bytes())
        except FileNotFoundError:
            return None
        return health

    def _prune(self, keep: str) -> None:
        older = sorted(p.name for p in self.generations.iterdir() if p.name != keep)
        for name in older[: max(0, len(older) - (KEEP_GENERATIONS - 1))]:
            shutil.rmtree(self.generations / name, ignore_errors=True)
