"""The `feeds` command: build feeds to files, check posts, serve them over HTTP."""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from feeds import logs
from feeds.config import Settings, load_settings
from feeds.errors import ConfigError
from feeds.published import PublishedStore, default_state_dir
from feeds.supervisor import SUPERVISOR_ENV, Supervisor, popen

if TYPE_CHECKING:
    from feeds.build import Build

EXIT_OK, EXIT_PROBLEMS, EXIT_CONFIG = 0, 1, 2
WORKERS_KILL_TIMEOUT = 5  # seconds; answers are ready-made bytes, graceful stops take ms
PROGRESS_THRESHOLD = 1000  # files; smaller scans finish before a bar would help
# granian's limit on a request's whole head (request line and header fields), in bytes:
# past it, 431. nginx's default admits at most 4 header lines of 8 KB (32 KB); granian's
# own default (408 KB) let a 64 KB header through.
MAX_REQUEST_HEAD = 32768

log = logging.getLogger("feeds")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    overrides: dict[str, object] = {}
    if getattr(args, "content", None):
        overrides["content_dir"] = args.content
    try:
        settings = load_settings(args.config, overrides=overrides)
    except ConfigError as error:
        print(f"feeds: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(log_format=settings.log_format)
    command: int = args.command(args, settings)
    return command


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feeds", description=__doc__)
    parser.add_argument("--config", type=Path, help="TOML settings file (default: config/feeds.toml)")
    commands = parser.add_subparsers(required=True, metavar="COMMAND")

    build = commands.add_parser(
        "build", help="write the site's, tags', categories' and archive feeds and feed.xsl"
    )
    build.add_argument("--content", help="content directory (overrides content_dir)")
    build.add_argument("--out", type=Path, default=Path("public"), help="output directory (default: public)")
    build.add_argument(
        "--strict", action="store_true", help="exit 1 when any post was skipped or lost its content"
    )
    build.set_defaults(command=_build)

    check = commands.add_parser("check", help="list every problem post as 'path: field: reason'")
    check.add_argument("--content", help="content directory (overrides content_dir)")
    check.set_defaults(command=_check)

    serve = commands.add_parser("serve", help="serve the feeds over HTTP with gunicorn, kept fresh")
    serve.add_argument("--content", help="content directory (overrides content_dir)")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=None, help="port (default: $PORT, else 8000)")
    serve.add_argument(
        "--workers", type=int, default=None, help="worker processes (default: $WEB_CONCURRENCY, else 2)"
    )
    serve.add_argument(
        "--server", choices=("granian", "gunicorn"), default="granian", help="HTTP server (default: granian)"
    )
    serve.set_defaults(command=_serve)
    return parser


def _run(settings: Settings) -> tuple[Build, float]:
    # Imported here: `feeds serve` stays a small process that never builds itself.
    from feeds import parsecache
    from feeds.pipeline import Pipeline

    started = time.perf_counter()
    with _ProgressBar(sys.stderr) as bar:
        pipeline = Pipeline(settings, cache=parsecache.for_build(settings))
        result = pipeline.run(dt.datetime.now(dt.UTC), progress=bar.update)
    return result, (time.perf_counter() - started) * 1000


def _build(args: argparse.Namespace, settings: Settings) -> int:
    from feeds.store import write_outputs

    result, elapsed_ms = _run(settings)
    for problem in result.problems:
        log.warning("%s", result.reported(problem))
    written = write_outputs(args.out, result.outputs)
    removed = f"; removed {len(written.removed)} files no longer built" if written.removed else ""
    print(
        f"built {len(written.paths)} files in {args.out}/: {result.files_read} files read, "
        f"{result.used} posts used ({len(result.items)} in the feeds), {result.held_back} held back, "
        f"{result.skipped} skipped, {elapsed_ms:.0f} ms{removed}"
    )
    return EXIT_PROBLEMS if args.strict and result.problems else EXIT_OK


def _check(args: argparse.Namespace, settings: Settings) -> int:
    result, _ = _run(settings)
    for problem in result.problems:
        print(problem)
    return EXIT_PROBLEMS if result.problems else EXIT_OK


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    """Runs the HTTP server and the builder (`python -m feeds.builder`) as children of
    this process (`feeds.supervisor`), once the settings are known to be good. The
    settings travel in the environment, which both inherit.

    granian by default: its HTTP layer is native code, and a cached feed answered by
    `feeds.web.CachedFeeds` costs it a few microseconds of Python. gunicorn remains for
    hosts that want it, with the same app and the same builder.
    """
    try:
        # Checked here, so an unsafe state directory stops it with one line and exit 2;
        # the workers get the folder itself (a private temporary one is made only once).
        state_dir = PublishedStore(default_state_dir(settings)).root
    except ConfigError as error:
        print(f"feeds: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    env = dict(os.environ)
    env["FEEDS_STATE_DIR"] = str(state_dir)
    if args.config:
        env["FEEDS_CONFIG"] = str(args.config.absolute())
    env["FEEDS_CONTENT_DIR"] = str(settings.content_dir)
    workers = str(args.workers or env.get("WEB_CONCURRENCY", "2"))
    env["WEB_CONCURRENCY"] = workers
    port = str(args.port or env.get("PORT", "8000"))
    if args.server == "gunicorn":
        argv = [
            *(sys.executable, "-m", "gunicorn", "--config", "python:feeds.gunicorn_config"),
            *("--bind", f"{args.host}:{port}", "feeds.web:create_app()"),
        ]
    else:
        argv = [
            *(sys.executable, "-m", "granian", "--interface", "wsgi", "--host", args.host, "--port", port),
            # One Python thread per worker: the answers are ready-made bytes, so more
            # threads only add GIL hand-offs (measured: p99 3.6 ms with 1, 5.2 ms with 4).
            *("--workers", workers, "--blocking-threads", "1", "--no-ws"),
            *("--http1-buffer-size", str(MAX_REQUEST_HEAD)),
            # A worker still starting up when SIGTERM comes ignores it (granian installs
            # its handlers late); after this many seconds the server kills it and exits.
            *("--workers-kill-timeout", str(WORKERS_KILL_TIMEOUT), "feeds.wsgi:app"),
        ]
    env[SUPERVISOR_ENV] = str(os.getpid())
    supervisor = Supervisor(argv, (sys.executable, "-m", "feeds.builder"), popen(env))
    supervisor.handle_signals()
    return supervisor.run()


class _ProgressBar:
    """A one-line bar on a terminal for long scans; silent in pipes and CI logs."""

    def __init__(self, stream: TextIO, width: int = 30) -> None:
        self.stream = stream
        self.width = width
        self.enabled = stream.isatty()
        self.shown = False

    def __enter__(self) -> _ProgressBar:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    def update(self, done: int, total: int) -> None:
        if not self.enabled or total < PROGRESS_THRESHOLD or (done % 100 and done != total):
            return
        filled = self.width * done // total
        self.stream.write(f"\rreading posts [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}")
        self.stream.flush()
        self.shown = True


if __name__ == "__main__":
    sys.exit(main())
