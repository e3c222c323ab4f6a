"""The buildpack path, as Heroku's Python buildpack (and Dokku, and Render) walks it: a
fresh virtual environment, `pip install -r requirements.txt` at the repository root, then
the Procfile's `web:` line run by a shell from that root with PORT set.

The repository is copied from `git ls-files`, so a file that is not committed cannot
make it pass. Network: pip reaches the package index it is configured with; the server
is only ever spoken to on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.specifiers import SpecifierSet
from test_security import exchange, wire

from feeds.config import load_settings
from feeds.pipeline import Pipeline

from feedcheck import parsed
from server import HOST, REPO, free_port

BASE_URL = "https://feeds.example.com"
PIP_TIMEOUT = 600  # seconds; a cold pip cache downloads some 20 wheels


def procfile_command(root: Path, process: str = "web") -> str:
    """The command of one process type, parsed as a PaaS reads a Procfile."""
    for line in (root / "Procfile").read_text().splitlines():
        name, colon, command = line.partition(":")
        if colon and name.strip() == process:
            return command.strip()
    raise AssertionError(f"the Procfile has no {process}: line")


def copy_of_the_repository(target: Path) -> Path:
    """Exactly the files git tracks (as they are in the working tree), nothing else."""
    listed = subprocess.run(
        ["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True
    ).stdout.decode()
    for name in filter(None, listed.split("\0")):
        source = REPO / name
        if not source.is_file():
            continue  # deleted in the working tree, not yet in git
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target / name)
    return target


def platform_environment(venv: Path, port: int) -> dict[str, str]:
    """This process's environment as a dyno would have it: the new venv first on PATH,
    nothing of the test's own virtual environment or source tree."""
    own_bin = str(Path(sys.executable).parent)
    path = [str(venv / "bin"), *(p for p in os.environ["PATH"].split(os.pathsep) if p != own_bin)]
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env = {k: v for k, v in env.items() if not k.startswith("FEEDS_")}
    return {**env, "PATH": os.pathsep.join(path), "PORT": str(port), "FEEDS_BASE_URL": BASE_URL}


@dataclass
class Deployed:
    root: Path
    venv: Path
    port: int
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        connection = http.client.HTTPConnection(HOST, self.port, timeout=10)
        try:
            connection.request("GET", path, headers=headers or {})
            response = connection.getresponse()
            return response.status, response.read()
        finally:
            connection.close()

    def output(self) -> str:
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    work = tmp_path_factory.mktemp("buildpack")
    root = copy_of_the_repository(work / "app")
    venv = work / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    port = free_port()
    env = platform_environment(venv, port)
    install = subprocess.run(
        ["pip", "install", "-r", "requirements.txt"],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=PIP_TIMEOUT,
    )
    assert install.returncode == 0, install.stdout[-3000:] + install.stderr[-3000:]
    log = work / "web.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            ["sh", "-c", procfile_command(root)],
            cwd=root,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    app = Deployed(root, venv, port, process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"exited with {process.returncode}: {app.output()[-3000:]}"
            try:
                if app.get("/healthz")[0] == 200:
                    break
            except OSError:
                pass
            assert time.monotonic() < deadline, f"not ready after 60 s: {app.output()[-3000:]}"
            time.sleep(0.1)
        time.sleep(1.5)  # granian loses a SIGTERM that reaches a worker still starting
        yield app
    finally:
        # The whole group: a server whose shell was stopped without it must not outlive the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def test_requirements_txt_is_the_one_pinned_list_that_run_sh_installs() -> None:
    """One file, so the development environment and the platform cannot drift apart."""
    assert not (REPO / "requirements.lock").exists()
    run_sh = (REPO / "run.sh").read_text()
    installs = re.findall(r"pip install [^\n]*-r (\S+)", run_sh)
    assert installs == ["requirements.txt"], installs
    lines = (REPO / "requirements.txt").read_text().splitlines()
    pins = [line for line in lines if re.match(r"^[A-Za-z0-9]", line)]
    assert pins and all(re.match(r"^[A-Za-z0-9._-]+==[^\s]+ \\$", line) for line in pins), pins
    assert not [line for line in lines if line.startswith(("-e", ".", "file:"))]


def test_python_version_is_the_one_the_suite_runs_on() -> None:
    pinned = (REPO / ".python-version").read_text().strip()
    assert re.fullmatch(r"3\.\d+", pinned), pinned
    requires = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["requires-python"]
    assert SpecifierSet(requires).contains(pinned + ".0")
    assert pinned == f"{sys.version_info.major}.{sys.version_info.minor}"


def test_the_procfile_serves_the_repository_content(deployed: Deployed) -> None:
    """The content the repository carries (config/feeds.toml names examples/content),
    served as `feeds build` would write it over the same files."""
    status, body = deployed.get("/rss.xml")
    assert status == 200, deployed.output()[-2000:]
    feed = parsed(body)
    assert len(feed.entries) >= 5
    assert all(entry.link.startswith(BASE_URL + "/posts/") for entry in feed.entries)
    settings = load_settings(
        deployed.root / "config" / "feeds.toml",
        environ={"FEEDS_BASE_URL": BASE_URL},
        overrides={"content_dir": str(deployed.root / "examples" / "content")},
    )
    built = Pipeline(settings).run(dt.datetime.now(dt.UTC))
    assert body == built.documents.rss
    assert [entry.title for entry in feed.entries] == [item.post.title for item in built.items]


def test_the_package_runs_from_the_root_without_being_installed(deployed: Deployed) -> None:
    """pip installed the dependencies only: no `feeds` command, no `feeds` distribution;
    `python -m feeds.cli` finds the package in the working directory."""
    assert not (deployed.venv / "bin" / "feeds").exists()
    site = next((deployed.venv / "lib").glob("python3*/site-packages"))
    assert not [p.name for p in site.iterdir() if p.name.lower().startswith("feeds")]
    assert (site / "granian").is_dir() and (site / "flask").is_dir()


def test_the_procfile_server_refuses_a_64_kb_header(deployed: Deployed) -> None:
    answer = exchange(deployed.port, wire(b"/rss.xml", headers=[b"X-Big: " + b"a" * 64 * 1024]))
    assert answer.status == 431, answer.describe()


def test_the_procfile_server_refuses_two_host_headers(deployed: Deployed) -> None:
    answer = exchange(deployed.port, wire(b"/rss.xml", headers=[b"Host: other.example"]))
    assert answer.status == 400, answer.describe()
    assert deployed.get("/rss.xml")[0] == 200


def test_sigterm_to_the_started_process_exits_0(deployed: Deployed) -> None:
    """The platform signals the process it started (a container's stop reaches only that
    one): the Procfile's `exec` makes it the server, which stops its workers and exits 0."""
    deployed.process.send_signal(signal.SIGTERM)
    assert deployed.process.wait(30) == 0, deployed.output()[-3000:]
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(deployed.process.pid, 0)
        except ProcessLookupError:
            return  # no process of the group is left
        time.sleep(0.1)
    raise AssertionError("workers outlived the server")
