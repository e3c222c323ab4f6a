"""What every measurement shares: the results table, figures and their formatting, the
corpora, and the small file and HTTP helpers."""

from __future__ import annotations

import http.client
import os
import socket
import statistics
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench import corpus

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
BASE_URL = "https://example.com"
ITEM_LIMIT = 50
MIB = 1024 * 1024
WORKERS = 2
SIZES = {"10k": 10_000, "100k": 100_000}


@dataclass
class Row:
    what: str
    figure: str
    baseline: str = "—"
    ratio: str = "—"
    target: str = "—"
    met: str = "—"


@dataclass
class Report:
    rows: list[Row] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    noise: list[tuple[str, float, float, float]] = field(default_factory=list)
    # Figures one section measures and a later one compares with (e.g. Hugo's memory).
    figures: dict[str, float] = field(default_factory=dict)

    def add(self, row: Row) -> None:
        self.rows.append(row)
        print(f"  | {row.what} | {row.figure} | {row.baseline} | {row.ratio} | {row.target} | {row.met} |")

    def note(self, text: str) -> None:
        self.notes.append(text)
        print(f"  note: {text}")

    def table(self) -> str:
        lines = ["| what | figure | baseline | ratio | target | met? |", "|---|---|---|---|---|---|"]
        for row in self.rows:
            cells = (row.what, row.figure, row.baseline, row.ratio, row.target, row.met)
            lines.append("| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |")
        return "\n".join(lines)


@dataclass(frozen=True)
class Options:
    """How much to measure: the full run, or `--quick` (10k only, fewer and shorter runs)."""

    quick: bool
    sizes: Mapping[str, int]
    runs: int  # paired runs of each cold build and of each load
    poll_samples: int
    duration: float  # seconds of each wrk run
    probes: Mapping[str, int]  # freshness probes per corpus size


def met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def seconds(value: float) -> str:
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.2f} s"


def median(values: Sequence[float]) -> float:
    return statistics.median(values)


def percentile(values: Sequence[float], pct: float) -> float:
    """Nearest-rank percentile (p99 of 50 samples is the largest of them)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-pct * len(ordered) // 100))))
    return ordered[rank - 1]


def paired_ratio(figures: Sequence[float], baselines: Sequence[float]) -> float:
    """The median of figure/baseline over runs measured side by side: a slow moment of
    the machine then weighs on both halves of a pair, not on one side's median."""
    return median([figure / baseline for figure, baseline in zip(figures, baselines, strict=True)])


def make_corpus(directory: Path, count: int, seed: int, descriptions: bool = True) -> Path:
    started = time.perf_counter()
    corpus.generate(directory, count, seed, descriptions=descriptions)
    elapsed = time.perf_counter() - started
    size = sum(path.stat().st_size for path in directory.rglob("*") if path.is_file())
    without = "" if descriptions else " without descriptions"
    print(f"  corpus: {count} posts{without}, {size / MIB:.0f} MiB, generated in {elapsed:.1f} s", flush=True)
    return directory


def replace_text(path: Path, text: str) -> None:
    """Writes `text` to `path` atomically (through a hidden file the scan skips) and
    makes sure its (size, mtime) signature changed."""
    before = path.stat()
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)
    after = path.stat()
    if (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns):
        os.utime(path, ns=(after.st_atime_ns, after.st_mtime_ns + 1_000_000))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def http_get(
    port: int, path: str, headers: Mapping[str, str] | None = None, timeout: float = 10
) -> tuple[int, dict[str, str], bytes]:
    connection = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        connection.request("GET", path, headers=dict(headers or {}))
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


def count_items(body: bytes) -> int:
    return body.count(b"<item>")
