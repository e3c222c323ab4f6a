"""The builder process: `python -m feeds.builder`. It scans the content directory,
builds and publishes into the state directory, and nothing else; the web workers only
read what it published. `feeds serve` starts it beside the HTTP server and restarts it
when it dies (see `feeds.supervisor`).

It reads its settings from the environment, as the web workers do, and runs at a lower
CPU priority than they do, so that a build never takes a core from a request (except
the very first build into an empty state directory, when there is nothing to serve). Two
builders over one state directory share it through the lease: one polls, the other
waits and takes over when the first one exits. SIGTERM (or SIGINT) ends it with exit 0
once the poll under way is finished.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
from types import FrameType

from feeds import logs
from feeds.config import load_settings
from feeds.errors import ConfigError
from feeds.supervisor import SUPERVISOR_ENV
from feeds.watcher import WatcherService

# Added to the process's nice value: builds yield the CPU to the web workers (nice 0),
# and still get all of it when no request is waiting.
NICENESS = 10
EXIT_OK, EXIT_CONFIG = 0, 2
ORPHAN_CHECK_SECONDS = 1.0

log = logging.getLogger("feeds.builder")


def main() -> int:
    stop = threading.Event()
    signalled: list[int] = []

    def stopping(signum: int, frame: FrameType | None) -> None:
        # A second signal runs this handler again, possibly while the first is inside
        # stop.set() holding its lock, which would then wait on itself for ever: only
        # the first signal touches the event.
        if not signalled:
            signalled.append(signum)
            stop.set()

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    lowered: list[bool] = []

    def yield_to_workers() -> None:
        if not lowered:
            lowered.append(True)
            os.nice(NICENESS)

    try:
        settings = load_settings()
        service = WatcherService(settings, after_site_first=yield_to_workers)
    except ConfigError as error:
        print(f"feeds: configuration error: {error}", file=sys.stderr)
        return EXIT_CONFIG
    logs.configure(log_format=settings.log_format)
    log.info("builder started (pid %d) for %s", os.getpid(), service.store.root)
    empty = service.store.current_name() is None
    if empty:
        # Nothing is published, so the workers have nothing to answer but 503: the
        # first build yields to nobody until the site's own feeds are out; the rest of
        # it (archives, terms, in forked processes that inherit the priority) yields.
        service.tick()
    yield_to_workers()
    if not empty:
        # The first build over a kept state dir is a whole one too: it runs while this
        # process has a single thread, so that it makes its archive pages in forked
        # processes (`feeds.parallel`), which also keeps their entries out of this one.
        service.tick()
    supervisor = os.environ.get(SUPERVISOR_ENV)
    if supervisor:
        watch = threading.Thread(target=_stop_when_orphaned, args=(int(supervisor), stop), daemon=True)
        watch.start()
    try:
        service.run(stop)
    finally:
        service.stop()
    return EXIT_OK


def _stop_when_orphaned(supervisor: int, stop: threading.Event) -> None:
    """Sets `stop` once the supervisor that started this builder is gone (killed
    without a chance to stop its children): a builder left behind would keep the lease,
    and the next `feeds serve` over the same state directory could never build."""
    while not stop.wait(ORPHAN_CHECK_SECONDS):
        if os.getppid() != supervisor:
            log.error("the supervisor (pid %d) is gone; the builder stops", supervisor)
            stop.set()


if __name__ == "__main__":
    sys.exit(main())
