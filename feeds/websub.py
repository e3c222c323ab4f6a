"""WebSub publishing (W3C Recommendation, §7): after a build changed some feeds, tell
the hub, which fetches them and pushes them to subscribers.

Pings go out from a thread of their own, so a slow or failing hub never holds up a
build or a request; a failed ping is retried with growing pauses, then dropped with an
error in the log (the next change pings again anyway).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence

log = logging.getLogger("feeds.websub")

RETRY_DELAYS = (1.0, 2.0, 4.0, 8.0, 16.0, 32.0)  # seconds before each retry
TIMEOUT = 10.0


class Publisher:
    def __init__(
        self, hub: str, retry_delays: Sequence[float] = RETRY_DELAYS, timeout: float = TIMEOUT
    ) -> None:
        self.hub = hub
        self.retry_delays = tuple(retry_delays)
        self.timeout = timeout
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="websub-publisher", daemon=True)
        self._thread.start()

    def publish(self, feed_urls: Iterable[str]) -> None:
        """Queues one ping per URL and returns at once."""
        for url in feed_urls:
            self._queue.put(url)

    def close(self, timeout: float = 5.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        while (url := self._queue.get()) is not None:
            self._ping_with_retries(url)

    def _ping_with_retries(self, url: str) -> None:
        for attempt, delay in enumerate((0.0, *self.retry_delays)):
            time.sleep(delay)
            try:
                status = self._ping(url)
            except (OSError, urllib.error.URLError) as error:
                reason = str(error)
            else:
                if 200 <= status < 300:
                    log.info("websub: %s accepted the ping for %s", self.hub, url)
                    return
                reason = f"HTTP {status}"
            log.warning("websub: ping %d for %s failed: %s", attempt + 1, url, reason)
        log.error("websub: giving up on the ping for %s after %d attempts", url, len(self.retry_delays) + 1)

    def _ping(self, url: str) -> int:
        form = urllib.parse.urlencode({"hub.mode": "publish", "hub.url": url}).encode()
        request = urllib.request.Request(  # noqa: S310 - the hub is an http(s) URL from the settings
            self.hub, data=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:  # noqa: S310
                status: int = response.status
                return status
        except urllib.error.HTTPError as error:
            return error.code
