"""Building the plugin manager (a factory: there is no module-global manager) and the
typed facade core code calls instead of ``pm.hook``."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, cast

import pluggy

from ie_core import hookspecs
from ie_core.errors import ConfigError

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

log = logging.getLogger("ie.plugins")
ENTRY_POINT_GROUP = "ie"


def make_plugin_manager(disabled: Iterable[str] = (),
                        extra: Sequence[tuple[str, object]] = (), *,
                        skip_broken: bool = False) -> pluggy.PluginManager:
    """A new manager with every plugin of the ``ie`` entry-point group loaded, except
    the ``disabled`` names; ``extra`` (name, plugin) pairs are registered after them
    (tests, embedding).

    A plugin that fails to load is a :class:`ConfigError`; with ``skip_broken`` it is
    logged and left out instead, and the hooks are not validated (for reading what the
    installed plugins declare, disabled and broken ones among them).
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    blocked = set(disabled)
    for name in blocked:
        pm.set_blocked(name)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        if ep.name in blocked or pm.get_plugin(ep.name) is not None:
            continue
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
        except Exception as err:
            if skip_broken:
                log.warning("event=plugin_load_failed plugin=%s error=%s", ep.name, err)
                continue
            raise ConfigError(f"plugin '{ep.name}' ({ep.value}) failed to load: {err}") from err
    for name, plugin in extra:
        if name not in blocked:
            pm.register(plugin, name=name)
    if skip_broken:
        return pm
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as err:
        raise ConfigError(f"plugin error: {err}") from err
    return pm


class Hooks:
    """Typed calls into the plugins."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm

    def config_keys(self) -> list[ConfigKey]:
        return [k for keys in self.pm.hook.ie_config_keys() for k in keys]

    def migration_locations(self) -> list[tuple[str, str]]:
        """(plugin name, folder) for every Alembic version folder a plugin declares."""
        found: list[tuple[str, str]] = []
        for impl in reversed(self.pm.hook.ie_migration_locations.get_hookimpls()):
            folders = cast("Sequence[str]", impl.function() or ())
            found.extend((impl.plugin_name, str(folder)) for folder in folders)
        return found

    def stages(self, app: App) -> list[Stage]:
        return [s for stages in self.pm.hook.ie_stages(app=app) for s in stages]

    def resolve_account(self, app: App, identity: SenderIdentity) -> str | None:
        result: str | None = self.pm.hook.ie_resolve_account(app=app, identity=identity)
        return result

    def hold(self, app: App, ctx: MessageContext, verdict: Verdict) -> str | None:
        result: str | None = self.pm.hook.ie_hold(app=app, ctx=ctx, verdict=verdict)
        return result

    def message_processed(self, app: App, ctx: MessageContext, verdict: Verdict) -> None:
        self.pm.hook.ie_message_processed(app=app, ctx=ctx, verdict=verdict)

    def action_taken(self, app: App, ctx: MessageContext, verdict: Verdict,
                     outcome: Outcome) -> None:
        """Tell the observers what was done; a plugin that raises is logged, not raised
        (the message is already safe)."""
        self._observe("ie_action_taken", app=app, ctx=ctx, verdict=verdict, outcome=outcome)

    def event(self, app: App, event: Event) -> None:
        """Hand an outbox event to the observers; a plugin that raises is logged, not
        raised (the caller goes on with the next event)."""
        self._observe("ie_event", app=app, event=event)

    def runtime_settings(self) -> list[RuntimeSetting]:
        return [r for rs in self.pm.hook.ie_runtime_settings() for r in rs]

    def owner_address(self, app: App, account: str) -> str | None:
        result: str | None = self.pm.hook.ie_owner_address(app=app, account=account)
        return result

    def owner_login_link(self, app: App, account: str) -> str | None:
        result: str | None = self.pm.hook.ie_owner_login_link(app=app, account=account)
        return result

    def is_whitelisted(self, app: App, kind: str, address: str) -> bool:
        return bool(self.pm.hook.ie_is_whitelisted(app=app, kind=kind, address=address))

    def whitelisted_among(self, app: App, kind: str, addresses: Sequence[str]) -> set[str]:
        found: set[str] | None = self.pm.hook.ie_whitelisted_among(
            app=app, kind=kind, addresses=addresses)
        return found or set()

    def classifiers(self, app: App) -> dict[str, Classifier]:
        return {c.name: c for cs in self.pm.hook.ie_classifiers(app=app) for c in cs}

    def learn(self, app: App, raw: bytes, spam: bool) -> None:
        self.pm.hook.ie_learn(app=app, raw=raw, spam=spam)

    def release(self, app: App, held_id: str, actor: str) -> bool | None:
        result: bool | None = self.pm.hook.ie_release(app=app, held_id=held_id, actor=actor)
        return result

    def cli_commands(self, app: App) -> list[click.Command]:
        return [c for cmds in self.pm.hook.ie_cli_commands(app=app) for c in cmds]

    def config_commands(self, app: App) -> list[click.Command]:
        return [c for cmds in self.pm.hook.ie_config_commands(app=app) for c in cmds]

    def account_options(self) -> list[AccountOption]:
        return [o for opts in self.pm.hook.ie_account_options() for o in opts]

    def status(self, app: App) -> list[StatusItem]:
        """Every plugin's items; a plugin that raises (say, the database is down) becomes
        one failing item, so the others are still shown."""
        from ie_core.status import StatusItem

        found: list[StatusItem] = []
        for impl in self.pm.hook.ie_status.get_hookimpls():
            try:
                items = cast("Sequence[StatusItem]", impl.function(app=app) or ())
                found.extend(items)
            except Exception as err:
                detail = " ".join(f"{type(err).__name__}: {err}".split())[:200]
                found.append(StatusItem(f"{impl.plugin_name} status", False, detail))
        return found

    def startup(self, app: App) -> None:
        self.pm.hook.ie_startup(app=app)

    def shutdown(self, app: App) -> None:
        self.pm.hook.ie_shutdown(app=app)

    def background(self, app: App) -> list[BackgroundService]:
        return [s for services in self.pm.hook.ie_background(app=app) for s in services]

    def metrics_collectors(self, app: App) -> list[object]:
        return [c for found in self.pm.hook.ie_metrics_collectors(app=app) for c in found]

    def _observe(self, hook: str, **kwargs: Any) -> None:
        """Call every implementation of an observer hook on its own, in pluggy's order,
        logging (not raising) what one throws: one plugin's failure never keeps the
        others (a send-limit correction, a notification) from seeing the message."""
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            try:
                impl.function(**{name: kwargs[name] for name in impl.argnames})
            except Exception:
                log.exception("event=plugin_error hook=%s plugin=%s", hook, impl.plugin_name)
