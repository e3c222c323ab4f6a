"""The servers the serving, start-up and freshness measurements talk to: the service
as the Procfile starts it, nginx serving the same bytes, wrk loading either, and a
writer that keeps changing posts while they are loaded."""

from __future__ import annotations

import json
import os
import re
import shlex
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from bench import corpus
from bench.common import (
    BASE_URL,
    HOST,
    REPO,
    VENV_BIN,
    WORKERS,
    count_items,
    free_port,
    http_get,
    replace_text,
)
from bench.processes import MemoryPeaks, ServerSampler, run_quietly, start_child, stop_child
from bench.tools import find_program


def procfile_argv(env: Mapping[str, str]) -> list[str]:
    """The Procfile's `web:` command with `$VARS` from `env`, bound to 127.0.0.1 (a
    leading `exec`, which only spares the dyno's shell, is dropped)."""
    lines = (REPO / "Procfile").read_text().splitlines()
    command = next((line[4:].strip() for line in lines if line.startswith("web:")), None)
    if not command:
        raise RuntimeError("the Procfile has no web: line")

    def expand(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2)
        return env.get(name, "")

    command = re.sub(r"\$\{(\w+)\}|\$(\w+)", expand, command).replace("0.0.0.0", HOST)
    argv = shlex.split(command)
    if argv and argv[0] == "exec":
        argv = argv[1:]
    if not os.path.isabs(argv[0]) and (VENV_BIN / argv[0]).exists():
        argv[0] = str(VENV_BIN / argv[0])
    return argv


def listening_addresses(port: int) -> set[str]:
    """Where something listens on `port` (from /proc/net/tcp), e.g. {'127.0.0.1'}."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket_address(address))
    return found


def socket_address(hex_address: str) -> str:
    return ".".join(str(byte) for byte in bytes.fromhex(hex_address)[::-1])


class FeedsServer:
    """The service as the Procfile starts it, on a free port of 127.0.0.1, with its
    processes' memory sampled from the start. `state` is the state directory (a new
    one under `work` unless given, so a restart can keep it)."""

    def __init__(
        self, work: Path, content: Path, name: str, state: Path | None = None, **settings: str
    ) -> None:
        self.port = free_port()
        self.state = state or work / f"state-{name}"
        self.log = work / f"server-{name}.log"
        env = {key: value for key, value in os.environ.items() if not key.startswith("FEEDS_")}
        env.update(
            PATH=f"{VENV_BIN}:{env.get('PATH', '')}",
            PORT=str(self.port),
            FEEDS_CONTENT_DIR=str(content),
            FEEDS_BASE_URL=BASE_URL,
            FEEDS_STATE_DIR=str(self.state),
            FEEDS_CONFIG=str(work / "empty.toml"),
            FEEDS_HEALTH_DETAILS="true",  # the bench names the failure when the first build fails
            WEB_CONCURRENCY=str(WORKERS),
            **{f"FEEDS_{key.upper()}": value for key, value in settings.items()},
        )
        self.argv = procfile_argv(env)
        print(f"  starting (the Procfile's web command): {shlex.join(self.argv)}", flush=True)
        self.spawned = time.perf_counter()
        self.process = start_child(self.argv, self.log, cwd=REPO, env=env)
        self.sampler = ServerSampler(self.process.pid)
        self.sampler.start()

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"server exited with {self.process.returncode}: {self.tail()}")

    def wait_ready(self, timeout: float) -> float:
        """Seconds from the spawn until /healthz answers 200 and the whole first build is
        published (`last_success`): a cold start publishes the site's own feeds first and
        goes on building, and the serving rows measure a service at rest, not its cold
        start (`bench/startup.py` measures that)."""
        deadline = self.spawned + timeout
        while time.perf_counter() < deadline:
            self.check_alive()
            try:
                status, _, body = http_get(self.port, "/healthz", timeout=5)
                if status != 200 and body.startswith(b"{"):
                    health = json.loads(body)
                    if health.get("status") == "error" and not health.get("last_success"):
                        raise RuntimeError(f"the first build failed: {health.get('last_error')}")
                if status == 200 and json.loads(body).get("last_success"):
                    elapsed = time.perf_counter() - self.spawned
                    where = listening_addresses(self.port)
                    if where - {HOST}:
                        print(f"  warning: the server listens on {sorted(where)}, not only {HOST}")
                    return elapsed
            except OSError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"server not ready after {timeout:.0f} s: {self.tail()}")

    def wait_feed(self, timeout: float, interval: float = 0.01) -> float:
        """Seconds from the spawn until GET /rss.xml answers 200 with items, asked every
        `interval` seconds (a refused connection is asked again)."""
        deadline = self.spawned + timeout
        while time.perf_counter() < deadline:
            self.check_alive()
            try:
                status, _, body = http_get(self.port, "/rss.xml", timeout=5)
                if status == 200 and count_items(body):
                    return time.perf_counter() - self.spawned
            except OSError:
                pass
            time.sleep(interval)
        raise RuntimeError(f"/rss.xml had no items {timeout:.0f} s after the start: {self.tail()}")

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""

    def stop(self) -> MemoryPeaks:
        """Stops the server; returns the memory peaks of its processes."""
        self.sampler.sample()
        peaks = self.sampler.stop()
        stop_child(self.process)
        return peaks


class NginxServer:
    """nginx serving rss.xml and rss.xml.gz from a temporary folder with gzip_static."""

    def __init__(self, work: Path, identity: bytes, gzipped: bytes, name: str = "nginx") -> None:
        binary = find_program("nginx")
        if binary is None:
            raise FileNotFoundError("nginx")
        self.port = free_port()
        self.root = work / name
        www = self.root / "www"
        www.mkdir(parents=True, exist_ok=True)
        (www / "rss.xml").write_bytes(identity)
        (www / "rss.xml.gz").write_bytes(gzipped)
        stamp = time.time() - 60
        for file_name in ("rss.xml", "rss.xml.gz"):
            os.utime(www / file_name, (stamp, stamp))
        user = "user root;\n" if os.geteuid() == 0 else ""
        temp = "\n".join(
            f"  {kind}_temp_path {self.root / kind};"
            for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        (self.root / "nginx.conf").write_text(
            f"{user}worker_processes {WORKERS};\n"
            f"pid {self.root / 'nginx.pid'};\n"
            f"error_log {self.root / 'error.log'} warn;\n"
            "events { worker_connections 1024; }\n"
            "http {\n"
            "  access_log off;\n"
            f"{temp}\n"
            "  default_type application/rss+xml;\n"
            "  server {\n"
            f"    listen {HOST}:{self.port};\n"
            f"    root {www};\n"
            "    gzip_static on;\n"
            "    gzip_vary on;\n"
            "    etag on;\n"
            "  }\n"
            "}\n"
        )
        self.log = self.root / "stdout.log"
        argv = [binary, "-c", str(self.root / "nginx.conf"), "-p", str(self.root)]
        argv += ["-e", str(self.root / "error.log"), "-g", "daemon off;"]
        self.spawned = time.perf_counter()
        self.spawned_to_ready = 0.0  # seconds, once wait_ready has seen it answer
        self.process = start_child(argv, self.log)
        self.sampler = ServerSampler(self.process.pid)
        self.sampler.start()

    def wait_ready(self, timeout: float = 20, interval: float = 0.01) -> float:
        """Seconds from the spawn until /rss.xml answers 200 with items, asked every
        `interval` seconds."""
        deadline = self.spawned + timeout
        while time.perf_counter() < deadline:
            if self.process.poll() is not None:
                errors = (self.root / "error.log").read_text(errors="replace") if self.root.exists() else ""
                raise RuntimeError(f"nginx exited with {self.process.returncode}: {errors[-1500:]}")
            try:
                status, _, body = http_get(self.port, "/rss.xml", timeout=5)
                if status == 200 and count_items(body):
                    self.spawned_to_ready = time.perf_counter() - self.spawned
                    return self.spawned_to_ready
            except OSError:
                pass
            time.sleep(interval)
        raise RuntimeError("nginx not ready")

    def stop(self) -> MemoryPeaks:
        self.sampler.sample()
        peaks = self.sampler.stop()
        stop_child(self.process)
        return peaks


def start_nginx(work: Path, identity: bytes, gzipped: bytes, name: str = "nginx") -> tuple[NginxServer, str]:
    """nginx serving these bytes, checked to answer them (and a 304); with its ETag."""
    nginx = NginxServer(work, identity, gzipped, name)
    try:
        nginx.wait_ready()
        status, headers, body = http_get(nginx.port, "/rss.xml", {"Accept-Encoding": "gzip"})
        if status != 200 or headers.get("content-encoding") != "gzip" or body != gzipped:
            raise RuntimeError(f"nginx answered {status} {headers} ({len(body)} bytes)")
        check_304(nginx.port, headers["etag"], "nginx")
    except Exception:
        nginx.stop()
        raise
    return nginx, headers["etag"]


def feed_variants(port: int) -> tuple[bytes, bytes, str]:
    """The identity body, the gzip body and the gzip ETag of /rss.xml."""
    status, headers, gzipped = http_get(port, "/rss.xml", {"Accept-Encoding": "gzip"})
    if status != 200 or headers.get("content-encoding") != "gzip" or "etag" not in headers:
        raise RuntimeError(f"/rss.xml with gzip answered {status} {headers}")
    status, _, identity = http_get(port, "/rss.xml")
    if status != 200:
        raise RuntimeError(f"/rss.xml answered {status}")
    return identity, gzipped, headers["etag"]


def check_304(port: int, etag: str, who: str) -> None:
    status, _, body = http_get(port, "/rss.xml", {"Accept-Encoding": "gzip", "If-None-Match": etag})
    if status != 304 or body:
        raise RuntimeError(f"{who} answered {status} with {len(body)} bytes to If-None-Match {etag}")


def generation_number(port: int) -> int:
    """The number of the generation in service, from /healthz (0 if it does not say)."""
    _, _, body = http_get(port, "/healthz")
    name = str(json.loads(body).get("generation") or "0")
    number = name.split("-")[0]
    return int(number) if number.isdigit() else 0


class Rewriter(threading.Thread):
    """Rewrites one of the 20 newest posts every `every` seconds (body and title, so
    that each rewrite changes /rss.xml), until stopped."""

    def __init__(self, posts: Path, every: float, seed: int) -> None:
        super().__init__(name="rewriter", daemon=True)
        self.newest = corpus.newest(posts, 20)
        self.every = every
        self.seed = seed
        self.count = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.wait(self.every) and self.count < 10_000:
            path = self.newest[self.count % len(self.newest)]
            text = path.read_text(encoding="utf-8")
            replace_text(path, corpus.rewritten(text, seed=self.seed + self.count, revision=self.count))
            self.count += 1

    def stop(self) -> int:
        """Stops the rewrites (also before they started); returns how many were made."""
        self.done.set()
        if self.ident is not None:
            self.join(5)
        return self.count


# --------------------------------------------------------------------------------------
# wrk
# --------------------------------------------------------------------------------------

# Shared by both wrk scripts: each thread counts statuses; the totals are printed.
_REPORT_STATUSES = """function done(summary, latency, requests)
  local total = {}
  for _, t in ipairs(threads) do
    for code, n in pairs(t:get("statuses")) do total[code] = (total[code] or 0) + n end
  end
  for code, n in pairs(total) do io.write(string.format("STATUS %d %d\\n", code, n)) end
end
"""

STATUS_SCRIPT = (
    """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {} end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end
"""
    + _REPORT_STATUSES
)

# A conditional-GET client: sends the last ETag it saw, as a feed reader does.
CONDITIONAL_SCRIPT = (
    """
local threads = {}
function setup(thread) table.insert(threads, thread) end
function init(args) statuses = {}; etag = args[1] end
function request()
  return wrk.format(nil, nil, {["Accept-Encoding"] = "gzip", ["If-None-Match"] = etag})
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local tag = headers["ETag"] or headers["Etag"] or headers["etag"]
  if tag then etag = tag end
end
"""
    + _REPORT_STATUSES
)


@dataclass(frozen=True)
class Load:
    requests_per_second: float
    p99: float  # seconds
    requests: int
    bad: int  # non-2xx/3xx answers plus socket errors
    statuses: dict[int, int]

    def count(self, status: int) -> int:
        return self.statuses.get(status, 0)

    def describe(self) -> str:
        return (
            f"{self.requests_per_second:.0f} req/s, p99 {self.p99 * 1000:.2f} ms, "
            f"statuses {self.statuses}, bad {self.bad}"
        )


_UNITS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def _duration(text: str) -> float:
    found = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not found:
        raise ValueError(f"cannot read wrk's duration {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def wrk(port: int, duration: float, work: Path, etag: str | None = None, connections: int = 32) -> Load:
    """One wrk run (2 threads, `connections` keep-alive clients) on
    http://127.0.0.1:port/rss.xml with gzip; with `etag`, conditional."""
    binary = find_program("wrk")
    if binary is None:
        raise FileNotFoundError("wrk")
    script = work / ("conditional.lua" if etag else "status.lua")
    script.write_text(CONDITIONAL_SCRIPT if etag else STATUS_SCRIPT)
    argv = [binary, "-t2", f"-c{connections}", f"-d{duration:g}s", "--latency", "-s", str(script)]
    if not etag:
        argv += ["-H", "Accept-Encoding: gzip"]
    argv.append(f"http://{HOST}:{port}/rss.xml")
    if etag:
        argv += ["--", etag]
    result = run_quietly(argv, timeout=duration + 60)
    out = result.stdout
    if result.returncode != 0:
        raise RuntimeError(f"wrk failed (exit {result.returncode}): {result.stderr[-800:]} {out[-800:]}")
    rate = re.search(r"^Requests/sec:\s+([\d.]+)", out, re.MULTILINE)
    p99 = re.search(r"^\s*99%\s+(\S+)", out, re.MULTILINE)
    total = re.search(r"(\d+) requests in", out)
    if not (rate and p99 and total):
        raise RuntimeError(f"cannot read wrk's output: {out[-1500:]}")
    non_ok = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    bad = (int(non_ok.group(1)) if non_ok else 0) + (sum(map(int, sockets.groups())) if sockets else 0)
    statuses = {int(code): int(n) for code, n in re.findall(r"^STATUS (\d+) (\d+)$", out, re.MULTILINE)}
    return Load(float(rate.group(1)), _duration(p99.group(1)), int(total.group(1)), bad, statuses)
