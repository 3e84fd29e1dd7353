"""Durations typed on a command line or sent over the socket API (``--since 30m``)."""

from __future__ import annotations

import re
from datetime import timedelta

from ie_core.errors import InvalidInput

MAX_DURATION = timedelta(days=3650)
_DURATION = re.compile(r"^\s*(\d{1,18})\s*([smhdw]?)\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "": 1, "d": 86400, "w": 7 * 86400}


def parse_duration(value: object, option: str = "--since") -> timedelta:
    """``100s``, ``30m``, ``1h``, ``7d``, ``2w``, in either case and with spaces allowed
    around the parts; a bare number is seconds, as the Imunify Email CLI documents it.
    ``0`` is accepted (an empty period).

    Raises :class:`InvalidInput` (one line naming ``option``) for anything else and for
    a duration longer than :data:`MAX_DURATION` (ten years).
    """
    text = value if isinstance(value, str) else ""
    m = _DURATION.match(text)
    if not m:
        raise InvalidInput(f"{option} takes a number and a unit s, m, h, d or w (100s, 5m, "
                           f"1h, 7d, 2w; a bare number is seconds), not {str(value)[:40]!r}")
    seconds = int(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()]
    if seconds > MAX_DURATION.total_seconds():
        raise InvalidInput(f"{option} {text.strip()[:40]} is longer than ten years")
    return timedelta(seconds=seconds)
