"""The state directory the watcher publishes into and every web worker serves from.

Each successful build that changed something becomes an immutable generation folder;
a `current` symlink, replaced atomically, names the one in service. A worker loads a
whole generation at once, so it never mixes the files of two builds, and every worker
(and every instance over the same settings) serves the same bytes.

    <state>/generations/000042-<digest>/{rss.xml,rss.xml.gz,...,tags/c++/rss.xml,...,build.json}
    <state>/current -> generations/000042-<digest>
    <state>/health.json

Whatever is in the state directory gets served, so it must be this service's alone: it
is refused at start unless this uid owns it and nobody else may write to it (as ssh
treats ~/.ssh), and a published file is never read through a symlink.
"""

from __future__ import annotations

import datetime as dt
import errno
import functools
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feeds.config import Settings
from feeds.dates import rfc3339
from feeds.errors import ConfigError, FeedsError
from feeds.files import write_atomically

KEEP_GENERATIONS = 3  # older ones are pruned; a worker still loading one retries
META_FILE = "build.json"
_GENERATION_NAME = re.compile(r"(\d+)-[0-9a-f]+")
_SECOND = dt.timedelta(seconds=1)
# O_NOFOLLOW: a symlink in place of a folder or a file fails (ELOOP) instead of leading
# elsewhere; O_NONBLOCK: a FIFO in place of a file cannot block the open.
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafeStateError(FeedsError):
    """A path in the state directory is not what the watcher writes there: a symlink,
    something other than a regular file, or a name that leaves its folder."""


def default_state_dir(settings: Settings) -> Path:
    """The `state_dir` setting, else a folder of this user's named after the settings,
    so that every worker (and every instance started with the same settings on this
    machine) finds the same one: `$XDG_STATE_HOME/feeds/<digest>`, by default
    `~/.local/state/feeds/<digest>`. Without a usable home, a fresh private temporary
    folder, the same for the whole process: `feeds serve` passes it on to its workers
    in FEEDS_STATE_DIR, and gunicorn's workers inherit it when they are forked."""
    if settings.state_dir:
        return Path(settings.state_dir).absolute()
    digest = hashlib.sha256(repr(settings).encode()).hexdigest()[:16]
    state_home = _state_home()
    if state_home is None:
        return _private_temporary_folder(digest)
    return state_home / "feeds" / digest


def _state_home() -> Path | None:
    """The XDG base directory for state, or None when there is no usable home."""
    configured = os.environ.get("XDG_STATE_HOME", "")
    if os.path.isabs(configured):  # the XDG spec: a relative value is invalid and ignored
        return Path(configured)
    try:
        home = Path.home()
        about = home.stat()
    except (RuntimeError, OSError):
        return None
    if not home.is_absolute() or not stat.S_ISDIR(about.st_mode) or about.st_uid != os.geteuid():
        return None  # a service account's home is often missing, or root's folder
    return home / ".local" / "state"


@functools.cache
def _private_temporary_folder(digest: str) -> Path:
    # mkdtemp makes a new folder with mode 0700 under a name nobody can guess ahead.
    return Path(tempfile.mkdtemp(prefix=f"feeds-{digest}-"))


def generation_number(name: str | None) -> int | None:
    """The sequence number of a generation's folder name; None for any other name."""
    match = _GENERATION_NAME.fullmatch(name or "")
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Generation:
    name: str
    files: Mapping[str, bytes]
    meta: Mapping[str, Any]


def digest_of(meta: Mapping[str, Any]) -> str:
    """A short tag for a generation's name, from what it describes."""
    return hashlib.blake2b(json.dumps(meta, sort_keys=True).encode(), digest_size=8).hexdigest()


def describe(
    documents: Mapping[str, int | None],
    files: Mapping[str, bytes],
    before: Generation | None,
    posts: int,
    now: dt.datetime,
) -> dict[str, Any]:
    """The metadata of a new generation (its build.json): the number of posts (for the
    empty-directory guard), and for each document (path -> max_age, None for the
    setting) its cache lifetime and its Last-Modified.

    A document's Last-Modified is the moment its current bytes were first published,
    in whole seconds: unchanged bytes keep it; changed bytes get `now`, or one second
    more than before when the clock has not moved that far, so that it never stays or
    goes back while the bytes change (a reader that validates by date would miss the
    change). A document new in this generation starts after every date published so
    far, so one that comes back after a removal does not go back either. Publication
    time lives here only, never in the documents: their bytes stay deterministic.
    """
    moment = now.astimezone(dt.UTC).replace(microsecond=0)
    old_meta = before.meta if before else {}
    old_files = before.files if before else {}
    old_about: Mapping[str, Any] = old_meta.get("files", {})
    latest = _moment(old_meta.get("last_modified_max"))
    described: dict[str, dict[str, Any]] = {}
    stamps = [] if latest is None else [latest]
    for path, max_age in documents.items():
        previous = _moment(old_about.get(path, {}).get("last_modified"))
        if previous is not None and old_files.get(path) == files[path]:
            stamp = previous
        elif previous is not None:
            stamp = max(moment, previous + _SECOND)
        else:
            stamp = moment if latest is None else max(moment, latest + _SECOND)
        stamps.append(stamp)
        described[path] = {"last_modified": rfc3339(stamp), "max_age": max_age}
    return {
        "posts": posts,
        "files": described,
        "last_modified_max": rfc3339(max(stamps)) if stamps else None,
    }


def _moment(text: object) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if isinstance(text, str) else None


class PublishedStore:
    """One state directory. Creating it checks that the directory is this service's
    alone and raises ConfigError (naming `state_dir`) when it is not."""

    def __init__(self, root: Path) -> None:
        _make_private_folder(root)
        self.root = root.resolve()  # a symlinked state_dir is checked, and used, as its target
        self.generations = self.root / "generations"
        self.current_link = self.root / "current"
        self.health_path = self.root / "health.json"
        _check_private_folder(self.root)
        _check_ancestors(self.root)
        if os.path.lexists(self.generations):
            _check_private_folder(self.generations)
        else:
            _make_private_folder(self.generations)

    def current_name(self) -> str | None:
        try:
            return os.path.basename(os.readlink(self.current_link))
        except FileNotFoundError:
            return None

    def has(self, name: str) -> bool:
        """Whether the generation `name` is still there (it may have been pruned)."""
        return os.path.isdir(self.generations / name)

    def publish(
        self, files: Mapping[str, bytes], meta: Mapping[str, Any], current_files: Mapping[str, bytes]
    ) -> str:
        """Makes `files` the current generation and returns its name. A file whose bytes
        are the very object of the current generation (`current_files`, which the caller
        has in memory) is linked, not written again: one edit rewrites only the
        documents it changed.

        A publisher killed at any step leaves at worst a staging folder, a generation
        that never became current or a temporary link; each is cleared or stepped over
        here, so the next publish always goes through."""
        self._clear_leftovers()
        current = self.current_name()
        name = f"{self._next_number():06d}-{digest_of(meta)}"
        staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=self.generations))
        for file_name, data in files.items():
            target = staging / file_name
            target.parent.mkdir(parents=True, exist_ok=True)
            if current and current_files.get(file_name) is data:
                try:
                    os.link(self.generations / current / file_name, target, follow_symlinks=False)
                    continue
                except OSError:
                    pass  # pruned or on another file system: write it
            target.write_bytes(data)
        (staging / META_FILE).write_text(json.dumps(meta, sort_keys=True))
        staging.chmod(0o755)
        # rename(2) onto an existing folder fails: a number is never used twice.
        os.rename(staging, self.generations / name)
        link = self.root / f".current-{os.getpid()}"
        link.unlink(missing_ok=True)
        link.symlink_to(Path("generations") / name)
        os.replace(link, self.current_link)
        self._prune(keep=name)
        return name

    def load(self, name: str) -> Generation:
        """Reads one generation; raises FileNotFoundError if it was pruned meanwhile."""
        files: dict[str, bytes] = {}
        folder = self._open_folder("generations", name)
        try:
            self._read_tree(folder, f"generations/{name}/", "", files)
        finally:
            os.close(folder)
        if META_FILE not in files:
            raise FileNotFoundError(errno.ENOENT, "being pruned", f"generations/{name}/{META_FILE}")
        meta = json.loads(files.pop(META_FILE))
        return Generation(name, files, meta)

    def read_meta(self, name: str) -> dict[str, Any]:
        """A generation's build.json; raises FileNotFoundError if it was pruned."""
        meta: dict[str, Any] = json.loads(self._read("generations", name, META_FILE))
        return meta

    def read_file(self, name: str, file_name: str) -> bytes:
        """One file of a generation; raises FileNotFoundError if it was pruned."""
        return self._read("generations", name, *file_name.split("/"))

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
            health: dict[str, Any] = json.loads(self._read(self.health_path.name))
        except FileNotFoundError:
            return None
        return health

    def _read(self, *parts: str) -> bytes:
        """A regular file below the root, reached without following any symlink."""
        folder = self._open_folder(*parts[:-1])
        try:
            return _read_file_at(folder, parts[-1], "/".join(parts))
        finally:
            os.close(folder)

    def _open_folder(self, *parts: str) -> int:
        """A descriptor of a folder below the root, opened one component at a time."""
        folder = os.open(self.root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            for depth, part in enumerate(parts):
                if part in ("", ".", "..") or "/" in part:
                    raise UnsafeStateError(f"{'/'.join(parts)}: a path that leaves its folder")
                child = _open_folder_at(folder, part, "/".join(parts[: depth + 1]))
                os.close(folder)
                folder = child
        except BaseException:
            os.close(folder)
            raise
        return folder

    def _read_tree(self, folder: int, shown: str, prefix: str, files: dict[str, bytes]) -> None:
        with os.scandir(folder) as entries:
            names = [(entry.name, entry.is_dir(follow_symlinks=False)) for entry in entries]
        for name, is_folder in names:
            if not is_folder:
                files[prefix + name] = _read_file_at(folder, name, shown + prefix + name)
                continue
            child = _open_folder_at(folder, name, shown + prefix + name)
            try:
                self._read_tree(child, shown, f"{prefix}{name}/", files)
            finally:
                os.close(child)

    def _next_number(self) -> int:
        """One more than any generation there is, current or not: a publisher killed
        between writing a generation and making it current left one behind."""
        names = [*os.listdir(self.generations), self.current_name()]
        return max((n for name in names if (n := generation_number(name)) is not None), default=0) + 1

    def _clear_leftovers(self) -> None:
        for leftover in self.generations.glob(".staging-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        for link in self.root.glob(".current-*"):
            link.unlink(missing_ok=True)

    def _prune(self, keep: str) -> None:
        numbered = sorted(
            (number, name)
            for name in os.listdir(self.generations)
            if name != keep and (number := generation_number(name)) is not None
        )
        for _, name in numbered[: max(0, len(numbered) - (KEEP_GENERATIONS - 1))]:
            shutil.rmtree(self.generations / name, ignore_errors=True)


def _open_folder_at(folder: int, name: str, shown: str) -> int:
    try:
        return os.open(name, _FOLDER_FLAGS, dir_fd=folder)
    except OSError as error:
        _raise_if_unsafe(error, shown, "is not a folder")
        raise


def _read_file_at(folder: int, name: str, shown: str) -> bytes:
    try:
        descriptor = os.open(name, _FILE_FLAGS, dir_fd=folder)
    except OSError as error:
        _raise_if_unsafe(error, shown, "is not a regular file")
        raise
    with open(descriptor, "rb") as file:
        if not stat.S_ISREG(os.fstat(descriptor).st_mode):
            raise UnsafeStateError(f"{shown}: is not a regular file")
        return file.read()


def _raise_if_unsafe(error: OSError, shown: str, what: str) -> None:
    # ELOOP: the last component is a symlink (O_NOFOLLOW); ENOTDIR: a file where a
    # folder belongs. FileNotFoundError and the rest are left to the caller.
    if error.errno in (errno.ELOOP, errno.ENOTDIR):
        raise UnsafeStateError(f"{shown}: {what} (a symlink is never followed)") from None


def _make_private_folder(folder: Path) -> None:
    """Creates `folder` and its missing parents with mode 0700, as the XDG spec asks."""
    missing = []
    for path in (folder, *folder.parents):
        if os.path.lexists(path):
            break
        missing.append(path)
    try:
        for path in reversed(missing):
            path.mkdir(mode=0o700, exist_ok=True)
    except OSError as error:
        raise ConfigError("state_dir", f"cannot create {str(folder)!r}: {error.strerror}") from None


def _check_ancestors(folder: Path) -> None:
    """Refuses a state directory below a folder that another user could rename it out
    of, putting a state directory of theirs in its place: as OpenSSH checks the folders
    above authorized_keys, each must belong to this user or to root, and be writable by
    no one else unless it has the sticky bit (like /tmp), which keeps others from
    renaming what they do not own. (The state directory itself is never shared.)"""
    for parent in folder.parents:
        try:
            about = os.lstat(parent)
        except OSError as error:
            raise ConfigError("state_dir", f"cannot use {str(parent)!r}: {error.strerror}") from None
        reason = None
        if about.st_uid not in (0, os.geteuid()):
            reason = f"belongs to uid {about.st_uid}, neither root nor this service's uid {os.geteuid()}"
        elif about.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not about.st_mode & stat.S_ISVTX:
            mode = stat.S_IMODE(about.st_mode)
            reason = f"is writable by its group or by others without the sticky bit (mode {mode:o})"
        if reason:
            raise ConfigError(
                "state_dir",
                f"{str(folder)!r} is inside {str(parent)!r}, which {reason}: another user could put "
                "a state directory of theirs in its place",
            )


def _check_private_folder(folder: Path) -> None:
    """Refuses a folder that another user owns or may write to: its files would be served."""
    try:
        about = os.lstat(folder)
    except OSError as error:
        raise ConfigError("state_dir", f"cannot use {str(folder)!r}: {error.strerror}") from None
    reason = None
    if not stat.S_ISDIR(about.st_mode):
        reason = "is not a folder (a symlink there is never followed)"
    elif about.st_uid != os.geteuid():
        reason = f"belongs to uid {about.st_uid}, not to this service's uid {os.geteuid()}"
    elif about.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        reason = f"is writable by its group or by others (mode {stat.S_IMODE(about.st_mode):o})"
    if reason:
        raise ConfigError("state_dir", f"{str(folder)!r} {reason}; it must be this service's alone")
