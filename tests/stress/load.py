"""A bounded stress run against a feeds server on this machine, checking every answer.

    python -m tests.stress.load --seconds 10 --clients 8 --base-url http://127.0.0.1:8000

`clients` threads, each with one keep-alive `http.client` connection, fetch /rss.xml,
/atom.xml and /feed.json in rotation, each as plain, gzip (`Accept-Encoding: gzip`) and
conditional (`If-None-Match` with the ETag this client last saw for that path and
coding, in both codings). Every answer is checked:

- the status is 200 or 304, nothing else;
- a 200 is complete (`Content-Length` equals the bytes read, gzip decompresses), has the
  right `Content-Type`, parses (lxml, strict, for the XML feeds; json for feed.json) as
  the document of its path, and carries the ETag recomputed here from the identity
  bytes (`"<blake2b-16 hex>"`, or `"<same>-gzip"` for the gzip coding, as in
  `feeds.caching.Representation.of`): a torn read, or bytes of one generation with the
  ETag of another, cannot pass;
- a 304 answers a conditional request, has no body and carries the ETag the client sent,
  so the server never says "not modified" for bytes that changed;
- a 200 never carries the very ETag the client sent (that request had to be a 304).

The run stops at `seconds` or after `max_requests` requests, whichever comes first, and
only talks to loopback addresses.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import http.client
import ipaddress
import json
import math
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from lxml import etree

PATHS = ("/rss.xml", "/atom.xml", "/feed.json")
MODES = ("plain", "gzip", "conditional", "conditional-gzip")
CONTENT_TYPES = {
    "/rss.xml": "application/rss+xml; charset=utf-8",
    "/atom.xml": "application/atom+xml; charset=utf-8",
    "/feed.json": "application/feed+json; charset=utf-8",
}
ROOT_TAGS = {"/rss.xml": "rss", "/atom.xml": "{http://www.w3.org/2005/Atom}feed"}
REQUEST_TIMEOUT = 10.0  # seconds for one request on the socket
MAX_SECONDS = 3600.0
MAX_CLIENTS = 256
MAX_REASONS = 20  # failure reasons kept in the report; all failures are counted


@dataclass
class Report:
    base_url: str
    clients: int
    seconds: float  # wall-clock time of the run
    requests: int
    by_status: dict[int, int]
    failures: int
    reasons: list[str]  # the first few failures, in the order they happened
    etag_changes: int  # times a client saw a new ETag for a path and coding it had seen before
    p50_ms: float
    p99_ms: float

    @property
    def ok(self) -> bool:
        return self.failures == 0 and self.requests > 0

    def summary(self) -> str:
        statuses = ", ".join(f"{status}: {count}" for status, count in sorted(self.by_status.items()))
        rate = self.requests / self.seconds if self.seconds else 0.0
        lines = [
            f"{self.requests} requests in {self.seconds:.1f} s ({rate:.0f}/s) by {self.clients} clients "
            f"to {self.base_url}; by status {{{statuses}}}; {self.failures} failures; "
            f"{self.etag_changes} ETag changes seen; latency p50 {self.p50_ms:.2f} ms, "
            f"p99 {self.p99_ms:.2f} ms"
        ]
        lines += [f"  failure: {reason}" for reason in self.reasons]
        return "\n".join(lines)


def loopback_address(base_url: str) -> tuple[str, int]:
    """(host, port) of `base_url`, which must be plain http to a loopback address."""
    parts = urlsplit(base_url)
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise ValueError(f"base URL must look like http://127.0.0.1:PORT, got {base_url!r}")
    host = parts.hostname
    if host != "localhost":
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise ValueError(f"only loopback addresses are allowed, got {host!r}") from None
        if not address.is_loopback:
            raise ValueError(f"only loopback addresses are allowed, got {host!r}")
    return host, parts.port or 80


def expected_etag(identity: bytes, gzipped: bool) -> str:
    """The ETag feeds gives these identity bytes (see feeds.caching.Representation.of)."""
    digest = hashlib.blake2b(identity, digest_size=16).hexdigest()
    return f'"{digest}-gzip"' if gzipped else f'"{digest}"'


def percentile(sorted_values: list[float], pct: float) -> float:
    """Nearest-rank percentile of an ascending list; 0.0 for an empty one."""
    if not sorted_values:
        return 0.0
    rank = max(1, math.ceil(pct / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


class _Shared:
    """What the client threads share: the request budget and the failure log."""

    def __init__(self, max_requests: int, deadline: float) -> None:
        self.max_requests = max_requests
        self.deadline = deadline
        self.lock = threading.Lock()
        self.issued = 0
        self.failures = 0
        self.reasons: list[str] = []

    def ticket(self) -> bool:
        """True when one more request may be sent: before the deadline, within the budget."""
        if time.monotonic() >= self.deadline:
            return False
        with self.lock:
            if self.issued >= self.max_requests:
                return False
            self.issued += 1
            return True

    def fail(self, reason: str) -> None:
        with self.lock:
            self.failures += 1
            if len(self.reasons) < MAX_REASONS:
                self.reasons.append(reason)


@dataclass
class _Client:
    """One client thread's connection, ETag memory and measurements."""

    index: int
    host: str
    port: int
    shared: _Shared
    statuses: Counter[int] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    etags: dict[tuple[str, bool], str] = field(default_factory=dict)
    etag_changes: int = 0

    def run(self) -> None:
        parser = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
        connection = http.client.HTTPConnection(self.host, self.port, timeout=REQUEST_TIMEOUT)
        step = self.index  # clients start at different points of the rotation
        try:
            while self.shared.ticket():
                path = PATHS[step % len(PATHS)]
                mode = MODES[(step // len(PATHS)) % len(MODES)]
                step += 1
                if not self._one(connection, parser, path, mode):
                    connection.close()  # http.client opens a fresh one on the next request
        finally:
            connection.close()

    def _one(
        self, connection: http.client.HTTPConnection, parser: etree.XMLParser, path: str, mode: str
    ) -> bool:
        gzipped = mode.endswith("gzip")
        headers = {"Accept-Encoding": "gzip"} if gzipped else {}
        sent_etag = self.etags.get((path, gzipped)) if mode.startswith("conditional") else None
        if sent_etag is not None:
            headers["If-None-Match"] = sent_etag
        label = f"GET {path} [{mode}]"
        started = time.perf_counter()
        try:
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            self.shared.fail(f"{label}: {type(error).__name__}: {error}")
            return False
        self.latencies.append((time.perf_counter() - started) * 1000)
        self.statuses[response.status] += 1
        problem = check_answer(path, gzipped, sent_etag, response, body, parser)
        if problem is not None:
            self.shared.fail(f"{label}: {problem}")
            return True
        etag = response.getheader("ETag")
        if response.status == 200 and etag is not None:
            previous = self.etags.get((path, gzipped))
            if previous is not None and previous != etag:
                self.etag_changes += 1
            self.etags[(path, gzipped)] = etag
        return True


def check_answer(
    path: str,
    gzipped: bool,
    sent_etag: str | None,
    response: http.client.HTTPResponse,
    body: bytes,
    parser: etree.XMLParser,
) -> str | None:
    """What is wrong with this answer, or None."""
    etag = response.getheader("ETag")
    if response.status == 304:
        if sent_etag is None:
            return "304 to a request without If-None-Match"
        if etag != sent_etag:
            return f"304 with ETag {etag}, but the client sent {sent_etag}"
        if body:
            return f"304 with a body of {len(body)} bytes"
        return None
    if response.status != 200:
        return f"unexpected status {response.status}"
    if etag is None:
        return "200 without ETag"
    if sent_etag is not None and etag == sent_etag:
        return f"200 although If-None-Match {sent_etag} matched the ETag of the answer"
    length = response.getheader("Content-Length")
    if length is None or not length.isdigit() or int(length) != len(body):
        return f"Content-Length {length} but {len(body)} bytes read"
    content_type = response.getheader("Content-Type")
    if content_type != CONTENT_TYPES[path]:
        return f"Content-Type {content_type!r}"
    encoding = response.getheader("Content-Encoding")
    if gzipped:
        if encoding != "gzip":
            return f"gzip accepted but Content-Encoding is {encoding!r}"
        try:
            identity = gzip.decompress(body)
        except (OSError, EOFError) as error:
            return f"gzip body does not decompress: {error}"
    else:
        if encoding is not None:
            return f"gzip not accepted but Content-Encoding is {encoding!r}"
        identity = body
    want = expected_etag(identity, gzipped)
    if etag != want:
        return f"ETag {etag} does not match the bytes served (they give {want}): torn or mixed read"
    return parse_problem(path, identity, parser)


def parse_problem(path: str, identity: bytes, parser: etree.XMLParser) -> str | None:
    if path == "/feed.json":
        try:
            document = json.loads(identity.decode("utf-8"))
        except ValueError as error:
            return f"feed.json does not parse: {error}"
        version = document.get("version", "") if isinstance(document, dict) else ""
        if not str(version).startswith("https://jsonfeed.org/version/1"):
            return f"feed.json is not a JSON Feed: version {version!r}"
        return None
    try:
        root = etree.fromstring(identity, parser)
    except etree.XMLSyntaxError as error:
        return f"{path} is not well-formed XML: {error}"
    if root.tag != ROOT_TAGS[path]:
        return f"{path} has root element {root.tag}, expected {ROOT_TAGS[path]}"
    return None


def run(base_url: str, seconds: float, clients: int, max_requests: int) -> Report:
    """Load `base_url` with `clients` threads until `seconds` pass or `max_requests`
    requests were sent; every answer is checked (see the module's docstring)."""
    host, port = loopback_address(base_url)
    if not 0 < seconds <= MAX_SECONDS:
        raise ValueError(f"seconds must be in (0, {MAX_SECONDS:.0f}], got {seconds}")
    if not 1 <= clients <= MAX_CLIENTS:
        raise ValueError(f"clients must be in [1, {MAX_CLIENTS}], got {clients}")
    if max_requests < 1:
        raise ValueError(f"max_requests must be at least 1, got {max_requests}")
    started = time.monotonic()
    shared = _Shared(max_requests, started + seconds)
    workers = [_Client(index, host, port, shared) for index in range(clients)]
    threads = [
        threading.Thread(target=worker.run, name=f"load-{worker.index}", daemon=True) for worker in workers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        # A request in flight at the deadline ends within REQUEST_TIMEOUT.
        thread.join(timeout=max(0.0, started + seconds - time.monotonic()) + REQUEST_TIMEOUT + 5)
    stuck = [thread.name for thread in threads if thread.is_alive()]
    if stuck:
        shared.fail(f"client threads still running after the run: {', '.join(stuck)}")
    elapsed = time.monotonic() - started
    statuses: Counter[int] = Counter()
    latencies: list[float] = []
    for worker in workers:
        statuses.update(worker.statuses)
        latencies.extend(worker.latencies)
    latencies.sort()
    return Report(
        base_url=base_url,
        clients=clients,
        seconds=elapsed,
        requests=shared.issued,
        by_status=dict(statuses),
        failures=shared.failures,
        reasons=list(shared.reasons),
        etag_changes=sum(worker.etag_changes for worker in workers),
        p50_ms=percentile(latencies, 50),
        p99_ms=percentile(latencies, 99),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.stress.load", description=__doc__.split("\n")[0])
    parser.add_argument("--base-url", required=True, help="http://127.0.0.1:PORT (loopback only)")
    parser.add_argument("--seconds", type=float, default=10.0, help="stop after this long (default 10)")
    parser.add_argument("--clients", type=int, default=8, help="concurrent connections (default 8)")
    parser.add_argument(
        "--max-requests", type=int, default=1_000_000, help="stop after this many requests (default 1e6)"
    )
    args = parser.parse_args(argv)
    try:
        report = run(args.base_url, args.seconds, args.clients, args.max_requests)
    except ValueError as error:
        parser.error(str(error))
    print(report.summary())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
