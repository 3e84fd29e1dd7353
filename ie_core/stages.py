"""Pipeline stages: what plugins register, and how the order per direction is chosen."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from ie_core.errors import ConfigError
from ie_core.message import MessageContext
from ie_core.verdict import Direction, Finding

BOTH = frozenset(Direction)


@dataclass(frozen=True)
class Stage:
    """A named check.  ``run`` is called in a worker thread (it may block on SQL or I/O)
    and returns ``None`` (no opinion) or a :class:`Finding`.

    ``priority`` places the stage when the configuration does not list an order
    (lower runs first): blocked and incoming 150, whitelist 200, winexec 300, classify 400,
    third-party default 500, ratelimit 900 (it must count only mail that will leave),
    incoming-mark 950.
    """

    name: str
    run: Callable[[MessageContext], Finding | None]
    directions: frozenset[Direction] = BOTH
    priority: int = 500
    after_final: bool = False
    """Run even after a finding ended the pipeline (a whitelist bypass): for accounting
    that must see every message that may leave, such as the account's send limit."""


def order_stages(stages: Iterable[Stage], direction: Direction,
                 configured: Sequence[str]) -> list[Stage]:
    """The stages for ``direction``: the configured list, or all by priority.

    A configured name that no loaded plugin registers is an error: a typo must never
    silently skip a check.
    """
    by_name: dict[str, Stage] = {}
    for stage in stages:
        if stage.name in by_name:
            raise ConfigError(f"two plugins register a stage named '{stage.name}'")
        by_name[stage.name] = stage
    if configured:
        ordered = []
        for name in configured:
            found = by_name.get(name)
            if found is None:
                raise ConfigError(f"pipeline.{direction}: no loaded plugin provides a stage "
                                  f"named '{name}' (known: {', '.join(sorted(by_name)) or 'none'})")
            if direction not in found.directions:
                raise ConfigError(f"pipeline.{direction}: stage '{name}' does not handle "
                                  f"{direction} mail")
            ordered.append(found)
        return ordered
    chosen = [s for s in by_name.values() if direction in s.directions]
    return sorted(chosen, key=lambda s: (s.priority, s.name))
