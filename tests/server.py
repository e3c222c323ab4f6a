"""Running the real service for end-to-end tests: `feeds serve` (the supervisor, the
builder and granian or gunicorn) on a free loopback port."""

from __future__ import annotations

import http.client
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def service_env(workdir: Path, content_dir: Path, **variables: str) -> dict[str, str]:
    """The environment of a service over `content_dir` with default settings (an empty
    TOML file in `workdir`), plus `variables`: `state_dir="…"` becomes FEEDS_STATE_DIR,
    and names already in capitals (PORT, WEB_CONCURRENCY) are taken as they are."""
    (workdir / "empty.toml").write_text("")
    return {
        **os.environ,
        "FEEDS_CONFIG": str(workdir / "empty.toml"),
        "FEEDS_CONTENT_DIR": str(content_dir),
        **{name if name.isupper() else f"FEEDS_{name.upper()}": value for name, value in variables.items()},
    }


class Server:
    """The real server over `content_dir`, on a free loopback port."""

    def __init__(
        self,
        workdir: Path,
        content_dir: Path,
        workers: int = 2,
        via_cli: bool = False,
        port: int | None = None,
        extra_env: Mapping[str, str] | None = None,
        **settings: str,
    ) -> None:
        """`feeds serve --server gunicorn`, with an access log naming each answer's
        worker; or with `via_cli`, `feeds serve` as the Procfile runs it (granian). Both
        run the builder beside the server. A `port` chosen beforehand lets `base_url`
        name the server itself; `extra_env` is more environment (the server's own
        variables); the standard output goes to `output_log`."""
        self.port = port or free_port()
        self.access_log: Path | None = workdir / f"access-{self.port}.log"
        self.error_log = workdir / f"error-{self.port}.log"
        self.output_log = workdir / f"output-{self.port}.log"
        defaults = {
            "base_url": "https://example.com",
            "poll_interval": "0.2",
            "WEB_CONCURRENCY": str(workers),
        }
        env = service_env(workdir, content_dir, **{**defaults, **settings, **(extra_env or {})})
        feeds_command = str(Path(sys.executable).with_name("feeds"))
        argv = [feeds_command, "serve", "--host", HOST, "--port", str(self.port)]
        if via_cli:
            self.access_log = None
        else:
            argv += ["--server", "gunicorn"]
            # gunicorn takes more options from this variable; `feeds serve` passes it on.
            env["GUNICORN_CMD_ARGS"] = shlex.join(
                [
                    "--access-logfile",
                    str(self.access_log),
                    "--access-logformat",
                    "%(p)s %(s)s %(U)s %({etag}o)s",
                ]
            )
        # The child keeps its own descriptors.
        with self.error_log.open("wb") as errors, self.output_log.open("wb") as output:
            self.process = subprocess.Popen(
                argv,
                cwd=workdir,
                env=env,
                stdout=output,
                stderr=errors,
                start_new_session=True,  # its own process group, for killpg
            )

    def request(
        self, path: str, method: str = "GET", headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            connection.request(method, path, headers=dict(headers or {}))
            response = connection.getresponse()
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
        finally:
            connection.close()

    def wait_until_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}: {self.errors()}")
            try:
                # A cold start publishes the site's own feeds first: ready means the
                # first whole build succeeded (its time is `last_success`).
                status, _, body = self.request("/healthz")
                if status == 200 and json.loads(body)["last_success"]:
                    return
            except OSError:
                pass
            time.sleep(0.05)
        raise AssertionError(f"server not ready after {timeout} s: {self.errors()}")

    def wait_for(self, path: str, condition: str, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
        """Polls `path` until its body contains `condition` (bounded in time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.request(path)
            if condition in answer[2].decode("utf-8", "replace"):
                return answer
            time.sleep(0.05)
        raise AssertionError(f"{path} never contained {condition!r}")

    def workers_seen(self, path: str, etag: str) -> set[str]:
        assert self.access_log is not None, "only the gunicorn command writes the access log"
        pids = set()
        for line in self.access_log.read_text().splitlines():
            fields = line.split(" ", 3)
            if len(fields) < 4:
                continue  # a line gunicorn is still writing
            pid, status, url, logged_etag = fields
            if url == path and logged_etag.replace('\\"', '"') == etag and status == "200":
                pids.add(pid)
        return pids

    def stop(self, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise

    def children(self) -> dict[int, str]:
        """The supervisor's live child processes: pid -> command line."""
        return {pid: command for pid, command in processes().items() if parent_of(pid) == self.process.pid}

    def builder_pid(self, timeout: float = 10) -> int:
        """The pid of the running builder (`python -m feeds.builder`), waited for."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            builders = [pid for pid, command in self.children().items() if "feeds.builder" in command]
            if len(builders) == 1:
                return builders[0]
            time.sleep(0.02)
        raise AssertionError(f"no single builder among {self.children()}")

    def errors(self) -> str:
        return self.error_log.read_text(errors="replace") if self.error_log.exists() else ""


def processes() -> dict[int, str]:
    """Every live process on the machine: pid -> command line (from /proc)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                raw = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            if raw:
                found[int(entry.name)] = raw.rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    return found


def parent_of(pid: int) -> int | None:
    """The parent pid of `pid`; None when it is gone or a zombie."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except OSError:
        return None
    return None if fields[0] == "Z" else int(fields[1])


def descendants(pid: int) -> set[int]:
    """The live processes below `pid`, however deep."""
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        children = {child for child in processes() if parent_of(child) in frontier}
        frontier = children - found
        found |= children
    return found
