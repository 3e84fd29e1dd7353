"""Health items reported by ``ie-config status``."""

from dataclasses import dataclass


@dataclass(frozen=True)
class StatusItem:
    name: str
    ok: bool
    detail: str = ""
    required: bool = True  # a failing required item makes the status exit non-zero
