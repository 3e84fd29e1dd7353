"""ie core: the public API plugins build on.

Plugins import only from here (and ``ie_core.db`` for tables, ``ie_core.events`` for the
outbox, ``ie_core.smtp.reinject`` to send mail past the filter).
"""

import pluggy

from ie_core.app import App, create_app
from ie_core.clock import Clock, ManualClock, SystemClock
from ie_core.config import ConfigKey
from ie_core.errors import (
                            ConfigError,
                            IeError,
                            InvalidInput,
                            NotFound,
                            PermissionDenied,
                            SchemaBehindError,
)
from ie_core.message import MessageContext, SenderIdentity
from ie_core.stages import Stage
from ie_core.status import StatusItem
from ie_core.verdict import Action, Direction, Finding, Verdict

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("ie")
"""Marker for hook implementations: ``@hookimpl def ie_stages(app): ...``."""

__all__ = [
    "Action", "App", "Clock", "ConfigError", "ConfigKey", "Direction", "Finding", "IeError",
    "InvalidInput", "ManualClock", "MessageContext", "NotFound", "PermissionDenied",
    "SchemaBehindError", "SenderIdentity", "Stage", "StatusItem", "SystemClock", "Verdict",
    "__version__", "create_app", "hookimpl",
]
