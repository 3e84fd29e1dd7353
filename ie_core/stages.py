"""Pipeline stages: what plugins register, their phases, and the order per direction.

A message goes through three phases, always in this order:

1. ``CHECK``: look at the message and return a :class:`Finding` (or ``None``).  A
   finding that ends the checks (``final``, or a whitelist ``bypass``) skips the checks
   after it.
2. ``DECIDE``: see the checks' verdict (:attr:`MessageContext.verdict`) and may add a
   finding of their own (the send limits count a message that will leave and hold one
   over its limit).  Every decision runs, whatever the checks found.
3. ``DECORATE``: see the final verdict and change the copy that leaves (headers through
   :meth:`MessageContext.add_header`, delivery groups); return ``None``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from enum import IntEnum

from ie_core.errors import ConfigError
from ie_core.message import MessageContext
from ie_core.verdict import Direction, Finding

BOTH = frozenset(Direction)


class Phase(IntEnum):
    """When a stage runs; the pipeline runs the phases in this order."""

    CHECK = 1
    DECIDE = 2
    DECORATE = 3

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Stage:
    """A named step of the pipeline.  ``run`` is called in a worker thread (it may block
    on SQL or I/O) and returns ``None`` (no opinion) or a :class:`Finding`; a
    ``DECORATE`` stage always returns ``None``.

    ``priority`` places the stage within its phase when the configuration does not list
    an order (lower runs first).  The built-in checks: blocklist 120, blocked and incoming 150,
    whitelist 200, winexec 300, classify 400, third-party default 500.
    """

    name: str
    run: Callable[[MessageContext], Finding | None]
    directions: frozenset[Direction] = BOTH
    priority: int = 500
    phase: Phase = Phase.CHECK
    description: str = ""
    """One line for the stage table in docs/hooks.md."""


def order_stages(stages: Iterable[Stage], direction: Direction,
                 configured: Sequence[str]) -> list[Stage]:
    """The stages for ``direction``: the configured list, or all by phase and priority.

    A configured name that no loaded plugin registers is an error (a typo must never
    silently skip a check), and so is a configured order that puts a stage before one of
    an earlier phase (a check after a decision would not be seen by it).
    """
    by_name: dict[str, Stage] = {}
    for stage in stages:
        if stage.name in by_name:
            raise ConfigError(f"two plugins register a stage named '{stage.name}'")
        by_name[stage.name] = stage
    if not configured:
        chosen = [s for s in by_name.values() if direction in s.directions]
        return sorted(chosen, key=lambda s: (s.phase, s.priority, s.name))
    ordered: list[Stage] = []
    for name in configured:
        found = by_name.get(name)
        if found is None:
            raise ConfigError(f"pipeline.{direction}: no loaded plugin provides a stage "
                              f"named '{name}' (known: {', '.join(sorted(by_name)) or 'none'})")
        if direction not in found.directions:
            raise ConfigError(f"pipeline.{direction}: stage '{name}' does not handle "
                              f"{direction} mail")
        later = next((s for s in ordered if s.phase > found.phase), None)
        if later is not None:
            raise ConfigError(
                f"pipeline.{direction}: stage '{name}' ({found.phase.label}) is listed after "
                f"'{later.name}' ({later.phase.label}); the phases run in the order "
                "check, decide, decorate")
        ordered.append(found)
    return ordered
