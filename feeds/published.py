"""The state directory the watcher publishes into and every web worker serves from.

Content-addressed: each document's bytes are stored once, under their digest (which is
also their ETag), beside their gzip twin; a generation is a small manifest from path to
digest, Last-Modified and max-age; a `current` symlink, replaced atomically, names the
manifest in service. Publishing one edit writes the few changed blobs and one manifest.
A worker holds one manifest at a time and reads blobs by digest, so it never mixes the
documents of two builds, and every worker (and every instance over the same settings)
serves the same bytes.

    <state>/blobs/3f/3f9c...e1        a document's bytes, named by content_digest()
    <state>/blobs/3f/3f9c...e1.gz     its gzip twin
    <state>/manifests/000042-<digest>.json
    <state>/current -> manifests/000042-<digest>.json
    <state>/health.json

Whatever is in the state directory gets served, so it must be this service's alone: it
is refused at start unless this uid owns it and nobody else may write to it (as ssh
treats ~/.ssh), and nothing in it is ever read through a symlink.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import functools
import gzip
import hashlib
import json
import logging
import os
import re
import shutil
import stat
import tempfile
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from feeds.caching import compress
from feeds.config import Settings
from feeds.dates import rfc3339
from feeds.errors import ConfigError, FeedsError
from feeds.files import write_atomically

log = logging.getLogger("feeds.published")

# The newest manifests kept, the current one among them, with every blob they name: a
# worker that still holds an older one finds its blobs gone and moves to the current.
KEEP_GENERATIONS = 3
MANIFESTS = "manifests"
BLOBS = "blobs"
GZIP_SUFFIX = ".gz"
OLD_GENERATIONS = "generations"  # the layout of 0.1.0: a folder of files per generation
_GENERATION_NAME = re.compile(r"(\d+)-[0-9a-f]+")
_MANIFEST_NAME = re.compile(r"(\d+-[0-9a-f]+)\.json")
_DIGEST = re.compile(r"[0-9a-f]{32}")
_SECOND = dt.timedelta(seconds=1)
# O_NOFOLLOW: a symlink in place of a folder or a file fails (ELOOP) instead of leading
# elsewhere; O_NONBLOCK: a FIFO in place of a file cannot block the open.
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


class UnsafeStateError(FeedsError):
    """A path in the state directory is not what the watcher writes there: a symlink,
    something other than a regular file, a name that leaves its folder, or a manifest
    that is not one."""


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
    """The sequence number of a generation's name (`000042-<digest>`); None for any other."""
    match = _GENERATION_NAME.fullmatch(name or "")
    return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Generation:
    """A whole generation read back: its documents' bytes by path, and its manifest."""

    name: str
    files: Mapping[str, bytes]
    meta: Mapping[str, Any]


def digest_of(meta: Mapping[str, Any]) -> str:
    """A short tag for a generation's name, from what it describes."""
    return hashlib.blake2b(json.dumps(meta, sort_keys=True).encode(), digest_size=8).hexdigest()


def describe(
    documents: Mapping[str, int | None],
    digests: Mapping[str, str],
    before: Mapping[str, Any] | None,
    posts: int,
    now: dt.datetime,
) -> dict[str, Any]:
    """The manifest of a new generation: the number of posts (for the empty-directory
    guard), and for each document (path -> max_age, None for the setting) the digest of
    its bytes (`digests`), its cache lifetime and its Last-Modified. `before` is the
    manifest in service, if any.

    A document's Last-Modified is the moment its current bytes were first published,
    in whole seconds: unchanged bytes (the same digest) keep it; changed bytes get
    `now`, or one second more than before when the clock has not moved that far, so
    that it never stays or goes back while the bytes change (a reader that validates by
    date would miss the change). A document new in this generation starts after every
    date published so far, so one that comes back after a removal does not go back
    either. Publication time lives here only, never in the documents: their bytes stay
    deterministic.
    """
    moment = now.astimezone(dt.UTC).replace(microsecond=0)
    old_meta = before or {}
    old_about: Mapping[str, Any] = old_meta.get("files", {})
    latest = _moment(old_meta.get("last_modified_max"))
    described: dict[str, dict[str, Any]] = {}
    stamps = [] if latest is None else [latest]
    for path, max_age in documents.items():
        old = old_about.get(path, {})
        if old.get("digest") == digests[path] and isinstance(old.get("last_modified"), str):
            # Unchanged bytes keep their date, which is at most `latest`: nothing to parse.
            described[path] = {
                "digest": digests[path],
                "last_modified": old["last_modified"],
                "max_age": max_age,
            }
            continue
        previous = _moment(old.get("last_modified"))
        if previous is not None:
            stamp = max(moment, previous + _SECOND)
        else:
            stamp = moment if latest is None else max(moment, latest + _SECOND)
        stamps.append(stamp)
        described[path] = {"digest": digests[path], "last_modified": rfc3339(stamp), "max_age": max_age}
    return {
        "posts": posts,
        "files": described,
        "last_modified_max": rfc3339(max(stamps)) if stamps else None,
    }


def digests_in(meta: Mapping[str, Any]) -> frozenset[str]:
    """Every blob a manifest refers to (each with its gzip twin)."""
    return frozenset(about["digest"] for about in meta.get("files", {}).values())


def _moment(text: object) -> dt.datetime | None:
    return dt.datetime.fromisoformat(text) if isinstance(text, str) else None


class PublishedStore:
    """One state directory. Creating it checks that the directory is this service's
    alone and raises ConfigError (naming `state_dir`) when it is not."""

    def __init__(self, root: Path) -> None:
        _make_private_folder(root)
        self.root = root.resolve()  # a symlinked state_dir is checked, and used, as its target
        self.blobs = self.root / BLOBS
        self.manifests = self.root / MANIFESTS
        self.current_link = self.root / "current"
        # Every request reads the link: as a str, and with the name of the last target
        # it had kept beside it (one tuple, so threads never see a half-updated pair).
        self._current_path = str(self.current_link)
        self._last_current: tuple[str, str | None] = ("", None)
        self.health_path = self.root / "health.json"
        _check_private_folder(self.root)
        _check_ancestors(self.root)
        for folder in (self.blobs, self.manifests):
            if os.path.lexists(folder):
                _check_private_folder(folder)
            else:
                _make_private_folder(folder)
        # The publisher's memory of what each manifest refers to, so that pruning one
        # costs a set difference, not a read of every manifest kept.
        self._digests: dict[str, frozenset[str]] = {}
        # A full sweep of the blobs (O(site)) clears what a killed or failed publish left
        # behind: due at this object's first publish and after any that did not finish.
        self._sweep_due = True

    def current_name(self) -> str | None:
        """The generation in service; None before the first publish (and while `current`
        still names a generation folder of 0.1.0, until the first publish replaces it)."""
        try:
            target = os.readlink(self._current_path)
        except FileNotFoundError:
            return None
        last = self._last_current
        if last[0] != target:
            match = _MANIFEST_NAME.fullmatch(os.path.basename(target))
            last = (target, match.group(1) if match and os.path.dirname(target) == MANIFESTS else None)
            self._last_current = last
        return last[1]

    def has(self, name: str) -> bool:
        """Whether the manifest of generation `name` is still there (it may be pruned)."""
        return os.path.isfile(self.manifests / f"{name}.json")

    def publish(self, blobs: Mapping[str, bytes], manifest: Mapping[str, Any]) -> str:
        """Makes `manifest` (see `describe`) the current generation and returns its name.
        `blobs` holds the bytes, by digest, of the documents the manifest in service does
        not have; a blob already stored (of an older generation, or written before a
        kill) is not written again. Only new bytes are gzipped.

        Every step is atomic (a rename), and the order (blobs, then the manifest, then
        `current`) means that whatever `current` names is complete. A publisher killed
        at any step leaves at worst temporary files, stored blobs no manifest names, a
        manifest that never became current or a temporary link; the next publish steps
        over them, and its sweep clears them."""
        sweep, self._sweep_due = self._sweep_due, True
        for digest, body in blobs.items():
            self._store_blob(digest, body)
        name = f"{self._next_number():06d}-{digest_of(manifest)}"
        file_name = f"{name}.json"
        _write_by_rename(self.manifests, file_name, json.dumps(manifest, sort_keys=True).encode())
        link = self.root / f".current-{os.getpid()}"
        link.unlink(missing_ok=True)
        link.symlink_to(Path(MANIFESTS) / file_name)
        os.replace(link, self.current_link)
        self._digests[name] = digests_in(manifest)
        self._prune()
        if sweep:
            self._sweep()
        self._sweep_due = False
        return name

    def restore(self, blobs: Mapping[str, bytes]) -> None:
        """Stores whichever of `blobs` (by digest) is missing, cut short or damaged: what
        the manifest in service names, checked byte for byte once by a publisher that has
        just started, since a crash of the machine may have lost data that never reached
        the disk."""
        for digest, body in blobs.items():
            if not self._holds(digest, body):
                self._remove_blobs([digest])
            self._store_blob(digest, body)

    def _holds(self, digest: str, body: bytes) -> bool:
        """Whether the blob `digest` and its twin are there and are `body`, byte for byte."""
        try:
            return self.read_blob(digest) == body and gzip.decompress(self.read_blob(digest, True)) == body
        except (OSError, EOFError, zlib.error, UnsafeStateError):
            return False

    def read_manifest(self, name: str) -> dict[str, Any]:
        """A generation's manifest; raises FileNotFoundError if it was pruned, and
        UnsafeStateError if it is not one this service wrote."""
        if generation_number(name) is None:
            raise UnsafeStateError(f"{name!r}: not a generation's name")
        shown = f"{MANIFESTS}/{name}.json"
        return _checked_manifest(self._read(MANIFESTS, f"{name}.json"), shown)

    def read_blob(self, digest: str, gzipped: bool = False) -> bytes:
        """A document's bytes (or their gzip twin) by digest; raises FileNotFoundError
        once no kept manifest refers to them and they were collected."""
        if not _DIGEST.fullmatch(digest):
            raise UnsafeStateError(f"{digest!r}: not a digest; a path that leaves its folder is never read")
        return self._read(BLOBS, digest[:2], digest + (GZIP_SUFFIX if gzipped else ""))

    def load(self, name: str) -> Generation:
        """Reads one generation whole; raises FileNotFoundError if it was pruned meanwhile."""
        meta = self.read_manifest(name)
        files = {path: self.read_blob(about["digest"]) for path, about in meta["files"].items()}
        return Generation(name, files, meta)

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

    def _store_blob(self, digest: str, body: bytes) -> None:
        folder = self.blobs / digest[:2]
        try:
            about = os.lstat(folder / digest)
            # The size too: a blob cut short (a crash of the machine before the data
            # reached the disk) is written again rather than kept for ever. The twin
            # must be there as well (a store from before removals kept that order).
            twin = os.lstat(folder / (digest + GZIP_SUFFIX))
            if stat.S_ISREG(about.st_mode) and about.st_size == len(body) and stat.S_ISREG(twin.st_mode):
                return
        except FileNotFoundError:
            pass
        with contextlib.suppress(FileExistsError):
            os.mkdir(folder, 0o700)
        # The twin first: a blob that is there has its twin.
        _write_by_rename(folder, digest + GZIP_SUFFIX, compress(body))
        _write_by_rename(folder, digest, body)

    def _manifest_names(self) -> list[str]:
        """The generations on disk, oldest first."""
        names = (
            match.group(1)
            for entry in os.listdir(self.manifests)
            if (match := _MANIFEST_NAME.fullmatch(entry))
        )
        return sorted(names, key=lambda name: generation_number(name) or 0)

    def _next_number(self) -> int:
        """One more than any generation there is, current or not (a publisher killed
        between writing a manifest and making it current left one behind), and than the
        0.1.0 generation folder `current` may still name."""
        try:
            target = os.path.basename(os.readlink(self.current_link)).removesuffix(".json")
        except FileNotFoundError:
            target = ""
        numbers = [generation_number(name) for name in [*self._manifest_names(), target]]
        return max((n for n in numbers if n is not None), default=0) + 1

    def _digests_of(self, name: str) -> frozenset[str]:
        if name not in self._digests:
            try:
                self._digests[name] = digests_in(self.read_manifest(name))
            except (FileNotFoundError, UnsafeStateError):
                return frozenset()  # nothing to keep for it; the sweep takes what it left
        return self._digests[name]

    def _prune(self) -> None:
        """Removes all but the newest KEEP_GENERATIONS manifests, and the blobs that only
        the removed ones refer to: a set difference over the few manifests involved."""
        names = self._manifest_names()
        kept, dropped = names[-KEEP_GENERATIONS:], names[:-KEEP_GENERATIONS]
        if not dropped:
            return
        referenced = frozenset().union(*(self._digests_of(name) for name in kept))
        for name in dropped:
            self._remove_blobs(self._digests_of(name) - referenced)
            (self.manifests / f"{name}.json").unlink(missing_ok=True)
            self._digests.pop(name, None)

    def _remove_blobs(self, digests: Iterable[str]) -> None:
        for digest in digests:
            # The blob before its twin, the reverse of `_store_blob`: a blob that is there
            # always has its twin, however the removal is interrupted.
            for file_name in (digest, digest + GZIP_SUFFIX):
                (self.blobs / digest[:2] / file_name).unlink(missing_ok=True)

    def _sweep(self) -> None:
        """Removes what no kept manifest names: blobs and temporary files a killed or
        failed publish left, and the generation folders of 0.1.0. A whole listing of the
        blobs, so it runs once per publisher process and after a failed publish only."""
        referenced = frozenset().union(*(self._digests_of(name) for name in self._manifest_names()))
        with os.scandir(self.blobs) as folders:
            for folder in list(folders):
                if not folder.is_dir(follow_symlinks=False):
                    os.unlink(folder.path)
                    continue
                with os.scandir(folder.path) as entries:
                    strays = [
                        entry.path
                        for entry in entries
                        if entry.name.removesuffix(GZIP_SUFFIX) not in referenced
                    ]
                for stray in strays:
                    os.unlink(stray)
        for file_name in os.listdir(self.manifests):
            if not _MANIFEST_NAME.fullmatch(file_name):
                os.unlink(self.manifests / file_name)
        for link in self.root.glob(".current-*"):
            link.unlink(missing_ok=True)
        old = self.root / OLD_GENERATIONS
        if os.path.lexists(old):
            log.warning(
                "%s: removing the generation folders of an older version; the feeds were published "
                "afresh from the content, with new Last-Modified dates (the ETags are the same)",
                old,
            )
            if os.path.isdir(old) and not os.path.islink(old):
                shutil.rmtree(old)
            else:
                os.unlink(old)


def _write_by_rename(folder: Path, name: str, data: bytes) -> None:
    """Writes `folder/name` so that no reader ever sees it half-written: a temporary
    file (a hidden name the sweep clears if this process dies first), then a rename."""
    temporary = folder / f".{name}.{os.getpid()}.tmp"
    temporary.write_bytes(data)
    os.replace(temporary, folder / name)


def _checked_manifest(data: bytes, shown: str) -> dict[str, Any]:
    """The manifest in `data`, if it has the shape `describe` gives one; each digest
    becomes a file name, so it must be one."""
    try:
        meta = json.loads(data)
    except ValueError:
        meta = None
    files = meta.get("files") if isinstance(meta, dict) else None
    if not isinstance(meta, dict) or not isinstance(files, dict):
        raise UnsafeStateError(f"{shown}: not a manifest this service wrote")
    for path, about in files.items():
        digest = about.get("digest") if isinstance(about, dict) else None
        if not isinstance(digest, str) or not _DIGEST.fullmatch(digest):
            raise UnsafeStateError(f"{shown}: not a manifest this service wrote ({path!r} has no digest)")
    return meta


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
