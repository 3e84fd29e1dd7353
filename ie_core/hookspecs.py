"""The hooks a plugin may implement.  ``docs/hooks.md`` is generated from the docstrings
below (``python docs/gen_hooks.py``): write them in Markdown.

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
    """Declare the configuration keys the plugin reads (`ie_core.ConfigKey`: section,
    name, type, default, doc).  Called before the configuration file is validated: a key
    no plugin declares is rejected."""


@hookspec
def ie_migration_locations() -> Sequence[str]:
    """Folders holding the plugin's Alembic revisions (its tables, declared on
    `ie_core.db.Base`).  Keep them inside the plugin's package (with an `__init__.py`) so
    they ship in its wheel.  The revisions are a branch of their own
    (`branch_labels = ("name",)`) that starts at the core revision the tables need
    (`down_revision = "0001_core"`, or `depends_on` a later one).  Revision ids must be
    unique across ie and every plugin: put the plugin's name in them.

    `ie-config db upgrade` brings core's branch and every *loaded* plugin's to its head;
    `ie-config db check`, `ie-config status`, the daemons at start and ie-filterd at SIGHUP
    require those heads.  A disabled plugin's tables are therefore not created; enable
    it, then run `ie-config db upgrade`.  The folders of installed but disabled plugins
    are still read, so the version rows a plugin left before it was disabled stay
    understood; a version row that no installed plugin provides is one clear error."""


@hookspec
def ie_stages(app: App) -> Sequence[Stage]:
    """Register pipeline stages (`ie_core.Stage`): a unique `name`, `run(ctx) -> Finding |
    None` (called in a worker thread; it may block), the `directions` it handles, its
    `phase`, a `priority` used within the phase when the configuration gives no order,
    and a one-line `description`.

    The phases run in order.  Checks (`Phase.CHECK`) look at the message; a finding with
    `final=True` (or a whitelist `bypass`) ends the checks.  Decisions (`Phase.DECIDE`)
    see the checks' verdict (`ctx.verdict`) and may add a finding; they always run.
    Decorations (`Phase.DECORATE`) see the final verdict and change only the copy that
    leaves (`ctx.add_header`, `ctx.remove_header`, `ctx.prefix_header`, delivery groups);
    they return `None`.  A configured order (`pipeline.outgoing`, `pipeline.incoming`)
    that puts a stage before one of an earlier phase is refused at start.  A stage that
    raises makes the message a tempfail (451), logged with the stage's name.  A finding
    asking for REJECT or TEMPFAIL may carry the reply the MTA gets (`reply`, an
    `ie_core.Reply` of the matching class: `550 5.7.1 Sender blocked by policy`);
    without one the reply is the generic `550 5.7.1` / `451 4.3.0`."""


@hookspec(firstresult=True)
def ie_resolve_account(app: App, identity: SenderIdentity) -> str | None:
    """Name the hosting account of a sender, or return `None` to let the next resolver
    try.  `identity` holds the sender email, domain, authenticated user and local user as
    our MTA reported them.  When no plugin answers the account is `root`."""


@hookspec
def ie_runtime_settings() -> Sequence[RuntimeSetting]:
    """Declare settings admins change at run time (`ie_core.runtime.RuntimeSetting`:
    dotted `name`, `type`, `default`, `doc`, `choices`).  `ie-cli filter-settings` lists
    and sets them (`--winexec-allow-outgoing yes`; `default` or `-1` restores the
    default); they live in the database and plugins read them per message with
    `ie_core.runtime.current(app, setting)`."""


@hookspec(firstresult=True)
def ie_owner_address(app: App, account: str) -> str | None:
    """The address that gets the notices and digests meant for `account`'s owner, or
    `None` when it has none (then the owner gets nothing)."""


@hookspec(firstresult=True)
def ie_owner_login_link(app: App, account: str) -> str | None:
    """A signed, expiring web address that logs `account`'s owner in to that account
    only (the owner digest carries it), or `None` when no web interface offers one."""


@hookspec(firstresult=True)
def ie_is_whitelisted(app: App, kind: str, address: str) -> bool | None:
    """Is `address` on the `kind` whitelist (`authuser`, `sender` or `recipient`)?
    `None` when no plugin keeps whitelists (then nothing is whitelisted)."""


@hookspec(firstresult=True)
def ie_whitelisted_among(app: App, kind: str, addresses: Sequence[str]) -> set[str] | None:
    """Which of `addresses` are on the `kind` whitelist, asked at once (for listings of
    many sender objects: one look-up, not one per row).  `None` when no plugin keeps
    whitelists."""


@hookspec(firstresult=True)
def ie_hold(app: App, ctx: MessageContext, verdict: Verdict) -> str | None:
    """Durably hold a message the policy sent to quarantine; return the held id.

    Return only after the bytes and the row are committed (the daemon answers 250 on
    that).  Raise on any failure: the daemon then answers 451 and the MTA keeps the
    message.  `None` means "not mine"; if no plugin holds it the answer is 451."""


@hookspec(firstresult=True)
def ie_release(app: App, held_id: str, actor: str) -> bool | None:
    """Release a held message as `actor`, without a per-user release limit (auto-release
    uses it).  `True`: the MTA accepted it for every recipient; `False`: it stays held
    (the reason is logged); `None`: no plugin holds mail.  Raises `ie_core.NotFound` when
    no held message has that id (deleted or released meanwhile)."""


@hookspec
def ie_classifiers(app: App) -> Sequence[Classifier]:
    """Offer classifier backends (`ie_core.classifier.Classifier`: `name`,
    `classify(raw, envelope=None)`, `learn(raw, spam)`, `forget(raw, spam)`, `stats()`);
    the configuration picks one per direction by its `name`.  The classify stage passes
    an `ie_core.classifier.Envelope` (`mail_from`, `""` for `<>`; `rcpt_tos`,
    `client_ip`, `queue_id`, `auth_user`; frozen); other callers (the benchmark) may pass
    none.  A backend may also offer `check(timeout) -> str`
    (`ie_core.classifier.HealthCheck`): a cheap reachability test for `ie-config status`
    that returns what it checked or raises `ClassifierUnavailable`; backends without it
    are checked with `stats()`."""


@hookspec
def ie_learn(app: App, raw: bytes, spam: bool) -> None:
    """Train the configured classifiers with one message: a quarantine release trains
    ham, a delete with `--spam` trains spam, a move into or out of Junk either."""


@hookspec
def ie_message_processed(app: App, ctx: MessageContext, verdict: Verdict) -> None:
    """Observe a message after the pipeline chose its verdict and before the action is
    carried out (not for `ie-cli check`).  Called in a worker thread; an exception here
    is logged and makes the message a tempfail, like a failing stage."""


@hookspec
def ie_action_taken(app: App, ctx: MessageContext, verdict: Verdict, outcome: Outcome) -> None:
    """Observe what was done with a message.  `outcome` is an `ie_core.Outcome`: its
    `result` is an `ie_core.Result` (`DELIVERED`, `HELD` with `outcome.held_id`,
    `REJECTED`, `TEMPFAILED`, or the downstream's answer `REJECTED_DOWNSTREAM` /
    `TEMPFAILED_DOWNSTREAM`), `outcome.left` says whether the message left, and
    `str(outcome)` is the form in the message log (`delivered`, `held:<id>` ...).  Each
    plugin is called on its own: one that raises is logged and the others still run (the
    message is already safe).  A retry suppressed as a duplicate is not observed again."""


@hookspec
def ie_event(app: App, event: Event) -> None:
    """Observe an outbox event, at least once per event: ie-filterd reads new events
    every `events.poll_interval` seconds and hands them over, once per daemon, whether
    the notifier runs or not.  Event kinds and payloads belong to the emitting plugin
    (`ie_plugins.quarantine.event_kinds`: `held`, `released`, `deleted`, `evicted`,
    `account_blocked`; the send limits: `limit_exceeded`)."""


@hookspec
def ie_cli_commands(app: App) -> Sequence[click.Command]:
    """Add commands or groups to `ie-cli`.  `app` is there to shape the commands (for
    example with the options other plugins declare); inside a command,
    `ie_core.commands.get_app()` gives the `App`."""


@hookspec
def ie_config_commands(app: App) -> Sequence[click.Command]:
    """Add commands to `ie-config` (deployment and service control)."""


@hookspec
def ie_account_options() -> Sequence[AccountOption]:
    """Declare per-account switches (`ie_core.account_options.AccountOption`: `name`,
    `choices`, `doc`, `get(app, account)`, `set(app, account, value)`) that become
    `--name` options of `ie-cli accounts edit` and fields of `ie-cli accounts list`, e.g.
    the incoming plugin's `--incoming on|off`."""


@hookspec
def ie_status(app: App) -> Sequence[StatusItem]:
    """Report health items for `ie-config status` (name, ok, detail); a failing item
    with `required=True` makes the command exit non-zero."""


@hookspec
def ie_background(app: App) -> Sequence[BackgroundService]:
    """Declare background services (`ie_core.background.BackgroundService`: a `name`,
    `run(stop_event)` that works until the event is set, and a `scope`).  Each runs in a
    thread of its own from the moment the listeners are up until the daemon stops, and
    is started again when it raises.  `Scope.DAEMON` runs once per ie-filterd (with
    `filter.workers` > 1, in the services process beside the workers), `Scope.WORKER` in
    every process that serves SMTP.  `ie_core.background.periodic(name, every, step)`
    makes a service of a function called every so many seconds (an exception in one pass
    is logged and the next pass comes as usual).  The hook itself is called in every
    process that runs services, whatever their scope: declaring a service must not start
    or claim anything (sockets, files, rows); that belongs in `run`.  `run` must come back
    within a second or so of the event being set (wait on it, or poll it): stopping waits
    ten seconds in all."""


@hookspec
def ie_metrics_collectors(app: App) -> Sequence[object]:
    """Offer Prometheus collectors (objects with `collect()` yielding
    `prometheus_client` metric families) that `/metrics` asks at each scrape: figures read
    from the database at that moment, such as the quarantine's bytes of the largest
    accounts.  Keep the label set bounded (`filter.metrics_top_accounts`).  Counters a
    plugin updates as things happen come from `ie_core.metrics.counter` instead."""


@hookspec
def ie_startup(app: App) -> None:
    """A process that serves SMTP is starting (schema checked, listeners up).  With
    `filter.workers` > 1 this runs in every worker: background work belongs in
    `ie_background`, which runs it once."""


@hookspec
def ie_shutdown(app: App) -> None:
    """A process that serves SMTP is stopping (every worker, after its background
    services have stopped): release what `ie_startup` took."""
