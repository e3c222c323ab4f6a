"""Log lines to stderr: plain text for people, or one JSON object a line for log
platforms (the `log_format` setting, `FEEDS_LOG_FORMAT=json`)."""

from __future__ import annotations

import json
import logging
import sys
from typing import TextIO

LOGGER_NAME = "feeds"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def configure(stream: TextIO | None = None, log_format: str = "text") -> logging.Logger:
    """Points the `feeds` logger at `stream` (default: the current stderr), replacing any
    handler an earlier call installed, so that calling it again is harmless.
    `log_format` is the `log_format` setting (`FEEDS_LOG_FORMAT`)."""
    handler = logging.StreamHandler(stream or sys.stderr)
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger(LOGGER_NAME)
    logger.handlers = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger
