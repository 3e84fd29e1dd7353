"""The hooks a plugin may implement.  Each is documented in ``docs/hooks.md``.

Implement a hook with the :data:`ie_core.hookimpl` marker in a module or object that is
registered through the ``ie`` entry-point group.  Hooks that collect (no ``firstresult``)
are called on every plugin and their non-``None`` results are gathered; for
``firstresult`` hooks the first non-``None`` answer wins.  pluggy calls the plugin
registered last first, so nothing that must be ordered (the stages) depends on that.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click

    from ie_core.account_options import AccountOption
    from ie_core.app import App
    from ie_core.background import BackgroundService
    from ie_core.classifier import Classifier
    from ie_core.config import ConfigKey
    from ie_core.events import Event
    from ie_core.message import MessageContext, SenderIdentity
    from ie_core.runtime import RuntimeSetting
    from ie_core.stages import Stage
    from ie_core.status import StatusItem
    from ie_core.verdict import Outcome, Verdict

PROJECT = "ie"
hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def ie_config_keys() -> Sequence[ConfigKey]:
    """Declare configuration keys this plugin reads (section, name, type, default, doc).

    Called before the configuration file is validated: a key no plugin declares is
    rejected.  Return a sequence of :class:`ie_core.ConfigKey`.
    """


@hookspec
def ie_stages(app: App) -> Sequence[Stage]:
    """Register pipeline stages.  Return a sequence of :class:`ie_core.Stage`.

    Each stage declares its :class:`ie_core.Phase`: checks look at the message, decisions
    see the checks' verdict (``ctx.verdict``) and may add a finding, decorations change
    the copy that leaves (``ctx.add_header``...) once the verdict is final.  Stage names
    are unique across plugins; within a phase the order comes from the configuration
    (``pipeline.outgoing`` / ``pipeline.incoming``, which may not put a stage before one
    of an earlier phase) or the priority.
    """


@hookspec(firstresult=True)
def ie_resolve_account(app: App, identity: SenderIdentity) -> str | None:
    """Name the hosting account of a sender, or return ``None`` to let the next resolver try.

    ``identity`` already holds the sender email, domain, authenticated user and local
    user.  First non-``None`` answer wins; when nobody answers the account is ``root``.
    """


@hookspec
def ie_runtime_settings() -> Sequence[RuntimeSetting]:
    """Declare settings admins change at run time with ``ie-cli filter-settings``
    (stored in the database, read per message with ``ie_core.runtime.current``)."""


@hookspec(firstresult=True)
def ie_is_whitelisted(app: App, kind: str, address: str) -> bool | None:
    """Is ``address`` on the ``kind`` whitelist (``authuser``, ``sender`` or
    ``recipient``)?  ``None`` when no plugin keeps whitelists."""


@hookspec(firstresult=True)
def ie_hold(app: App, ctx: MessageContext, verdict: Verdict) -> str | None:
    """Durably hold a message the policy sent to quarantine; return the held id.

    Must return only after the bytes and the row are committed (the daemon answers 250
    on that).  Raise on any failure: the daemon then answers 451 and the MTA keeps the
    message.  ``None`` means "not mine"; if no plugin holds it the answer is 451.
    """


@hookspec
def ie_message_processed(app: App, ctx: MessageContext, verdict: Verdict) -> None:
    """Observe a message after the pipeline chose its verdict (not for ``ie-cli check``).

    Called in a worker thread before the action is carried out.  An exception here is
    logged and turns into a tempfail, like a failing stage.
    """


@hookspec
def ie_action_taken(app: App, ctx: MessageContext, verdict: Verdict, outcome: Outcome) -> None:
    """Observe what was done with a message: ``outcome.result`` is a
    :class:`ie_core.Result` (``DELIVERED``, ``HELD`` with ``outcome.held_id``,
    ``REJECTED``, ``TEMPFAILED``, or the downstream's answer ``REJECTED_DOWNSTREAM`` /
    ``TEMPFAILED_DOWNSTREAM``).  Each plugin is called on its own: one that raises is
    logged and the others still run (the message is already safe).  A retry suppressed as
    a duplicate is not observed again."""


@hookspec
def ie_event(app: App, event: Event) -> None:
    """Observe an event read from the outbox (run by an event subscriber such as the
    notifier, at least once per event)."""


@hookspec
def ie_classifiers(app: App) -> Sequence[Classifier]:
    """Offer classifier backends (see :mod:`ie_core.classifier`); the configuration picks
    one per direction by its ``name``."""


@hookspec
def ie_learn(app: App, raw: bytes, spam: bool) -> None:
    """Train the configured classifiers with one message (a quarantine release trains
    ham, a delete with ``--spam`` trains spam, a move into or out of Junk either)."""


@hookspec(firstresult=True)
def ie_release(app: App, held_id: str, actor: str) -> bool | None:
    """Release a held message as ``actor`` (no per-user release limit applies).

    Return ``True`` when the MTA accepted it for every recipient, ``False`` when it stays
    held (the reason is logged), ``None`` when no plugin holds mail.  Raises
    :class:`~ie_core.errors.NotFound` when no held message has that id.
    """


@hookspec
def ie_cli_commands(app: App) -> Sequence[click.Command]:
    """Add commands (or groups) to ``ie-cli``.  ``app`` is there to shape the commands
    (options other plugins declare); inside a command use ``ie_core.commands.get_app()``."""


@hookspec
def ie_config_commands(app: App) -> Sequence[click.Command]:
    """Add commands to ``ie-config`` (deployment and service control)."""


@hookspec
def ie_account_options() -> Sequence[AccountOption]:
    """Declare per-account switches for ``ie-cli accounts edit``/``accounts list``
    (see :class:`ie_core.account_options.AccountOption`)."""


@hookspec
def ie_status(app: App) -> Sequence[StatusItem]:
    """Report health items for ``ie-config status`` (name, ok, detail)."""


@hookspec
def ie_background(app: App) -> Sequence[BackgroundService]:
    """Declare background services (:class:`ie_core.background.BackgroundService`): each
    runs in a thread of its own until the daemon stops, restarted when it raises.  Scope
    ``DAEMON`` runs once per ie-filterd (with ``filter.workers`` > 1, in the services
    process), ``WORKER`` in every process that serves SMTP.  Read the configuration
    here (``app`` is the daemon's); the services start after the listeners."""


@hookspec
def ie_startup(app: App) -> None:
    """A process that serves SMTP is starting (after the schema check).  With
    ``filter.workers`` > 1 this runs in every worker: background work belongs in
    :func:`ie_background`, which runs it once."""


@hookspec
def ie_shutdown(app: App) -> None:
    """A process that serves SMTP is stopping: release what :func:`ie_startup` took."""
