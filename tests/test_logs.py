"""Log lines: plain text for people, one JSON object a line for log platforms."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from feeds import cli, logs


def test_text_lines() -> None:
    stream = io.StringIO()
    logger = logs.configure(stream, "text")
    logging.getLogger("feeds.watcher").warning("skipped %s", "a.txt: date: missing")
    logger.info("hello")
    assert stream.getvalue().splitlines() == [
        "WARNING feeds.watcher: skipped a.txt: date: missing",
        "INFO feeds: hello",
    ]


def test_json_lines_carry_fields_and_errors() -> None:
    stream = io.StringIO()
    logs.configure(stream, "json")
    log = logging.getLogger("feeds.watcher")
    log.info("build: %d changed", 3, extra={"fields": {"changed": 3, "ms": 1.5}})
    try:
        raise RuntimeError("disk on fire")
    except RuntimeError:
        log.exception("build failed")
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["message"] == "build: 3 changed"
    assert (first["level"], first["logger"], first["changed"], first["ms"]) == (
        "info",
        "feeds.watcher",
        3,
        1.5,
    )
    assert second["level"] == "error" and "RuntimeError: disk on fire" in second["error"]


def test_configure_twice_keeps_one_handler() -> None:
    first, second = io.StringIO(), io.StringIO()
    logs.configure(first, "text")
    logger = logs.configure(second, "text")
    logger.info("once")
    assert first.getvalue() == "" and second.getvalue() == "INFO feeds: once\n"
    assert len(logger.handlers) == 1


def test_the_log_format_setting_reaches_the_cli(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    content = tmp_path / "content"
    content.mkdir()
    (content / "bad.txt").write_text("---\ntitle: Bad\n---\n")
    monkeypatch.setenv("FEEDS_LOG_FORMAT", "json")
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    assert (
        cli.main(["--config", str(empty), "build", "--content", str(content), "--out", str(tmp_path / "o")])
        == 0
    )
    (line,) = capsys.readouterr().err.splitlines()
    assert json.loads(line)["message"] == "skipped bad.txt: date: missing"
