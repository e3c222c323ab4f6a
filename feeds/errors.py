"""The one exception root of the project, and the problems it reports about posts."""

from __future__ import annotations

from dataclasses import dataclass


class FeedsError(Exception):
    """Root of every error this package raises on purpose."""


class ConfigError(FeedsError, ValueError):
    """A setting is missing, of the wrong type or malformed; `setting` names it."""

    def __init__(self, setting: str, reason: str) -> None:
        super().__init__(f"{setting}: {reason}")
        self.setting = setting
        self.reason = reason


MAX_REASON = 300  # characters: a hostile value must not make a log line or /healthz huge


@dataclass(frozen=True, order=True)
class Problem:
    """Why one post (named by its path relative to the content directory) was left out."""

    path: str
    field: str
    reason: str

    def __post_init__(self) -> None:
        if len(self.reason) > MAX_REASON:
            object.__setattr__(self, "reason", self.reason[: MAX_REASON - 1] + "…")

    def __str__(self) -> str:
        return f"{self.path}: {self.field}: {self.reason}"


class PostError(FeedsError, ValueError):
    """A post cannot be used; carries every problem found in it, not just the first."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(str(p) for p in problems))
        self.problems = problems
