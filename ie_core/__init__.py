"""ie core: the public API plugins build on.

Plugins import from here and from these modules only (:data:`PUBLIC_MODULES`, checked by
``tests/unit/test_layering.py``): ``ie_core.db``, ``ie_core.db.models`` and
``ie_core.db.migrate`` (tables, the core's account and domain tables, the schema check),
``ie_core.events`` (the outbox), ``ie_core.smtp.reinject`` (sending mail past the filter),
``ie_core.classifier`` (the classifier contract), ``ie_core.runtime`` (run-time settings),
``ie_core.changes`` (change counters for data a plugin caches),
``ie_core.commands`` and ``ie_core.account_options`` (what plugins add to the command
lines), ``ie_core.identity`` (address and name checks), ``ie_core.config`` (host:port
values, the default config path), ``ie_core.message`` (header decoding),
``ie_core.rawheaders`` (editing a message's header block byte-exactly),
``ie_core.durations`` (``--since``-style durations), ``ie_core.background`` (the
services a plugin declares with ``ie_background``), ``ie_core.metrics`` (counters a
plugin updates), ``ie_core.pidfile`` (the running ie-filterd) and ``ie_core.unix_socket``
(the local sockets ie-filterd serves).  The core never imports
a plugin.
"""

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from ie_core.replies import Reply
    from ie_core.stages import Phase, Stage
    from ie_core.status import StatusItem
    from ie_core.verdict import Action, Bypass, Direction, Finding, Outcome, Result, Verdict

    hookimpl: pluggy.HookimplMarker

__version__ = "0.1.0"

_LAZY = {
    **dict.fromkeys(("App", "create_app"), "ie_core.app"),
    **dict.fromkeys(("Clock", "ManualClock", "SystemClock"), "ie_core.clock"),
    "ConfigKey": "ie_core.config",
    **dict.fromkeys(("ConfigError", "IeError", "InvalidInput", "NotFound", "PermissionDenied",
                     "SchemaBehindError"), "ie_core.errors"),
    **dict.fromkeys(("MessageContext", "SenderIdentity"), "ie_core.message"),
    "Reply": "ie_core.replies",
    **dict.fromkeys(("Phase", "Stage"), "ie_core.stages"),
    "StatusItem": "ie_core.status",
    **dict.fromkeys(("Action", "Bypass", "Direction", "Finding", "Outcome", "Result",
                     "Verdict"), "ie_core.verdict"),
}
"""The public names, each imported on first use: a command that needs none of them
(``ie-cli version``) starts without SQLAlchemy, the email package or pluggy."""


def __getattr__(name: str) -> Any:
    import importlib

    if name == "hookimpl":
        import pluggy

        # the marker for hook implementations: ``@hookimpl def ie_stages(app): ...``
        value: Any = pluggy.HookimplMarker("ie")
    elif name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'ie_core' has no attribute {name!r}")
    globals()[name] = value
    return value


PUBLIC_MODULES = frozenset({
    "ie_core", "ie_core.db", "ie_core.db.models", "ie_core.db.migrate", "ie_core.events",
    "ie_core.smtp.reinject",
    "ie_core.classifier", "ie_core.runtime", "ie_core.changes", "ie_core.commands",
    "ie_core.account_options",
    "ie_core.identity", "ie_core.config", "ie_core.message", "ie_core.rawheaders",
    "ie_core.durations", "ie_core.background", "ie_core.metrics", "ie_core.pidfile",
    "ie_core.unix_socket",
})

__all__ = [
    "Action", "App", "Bypass", "Clock", "ConfigError", "ConfigKey", "Direction", "Finding",
    "IeError", "InvalidInput", "ManualClock", "MessageContext", "NotFound", "Outcome",
    "PermissionDenied", "Phase", "Reply", "Result", "SchemaBehindError", "SenderIdentity", "Stage",
    "StatusItem", "SystemClock", "Verdict",
    "PUBLIC_MODULES", "__version__", "create_app", "hookimpl",
]
