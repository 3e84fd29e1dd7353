"""``ie-cli filter-settings``: list, or change, the run-time filter settings plugins declare."""

from __future__ import annotations

import click

from ie_core.commands import emit, get_app, require_root, served
from ie_core.pluginmanager import Hooks
from ie_core.runtime import RESTORE, RuntimeSetting, change, current


def build(hooks: Hooks) -> click.Command:
    specs = {s.name: s for s in hooks.runtime_settings()}

    @click.pass_context
    def callback(ctx: click.Context, as_json: bool, **given: str | None) -> None:
        app = get_app()
        changes = {}
        for spec in specs.values():
            text = given.get(_param(spec))
            if text is not None:
                changes[spec.name] = spec.parse(text)
        if changes:
            require_root()
            change(app, list(specs.values()), changes)
        values = {name: current(app, spec) for name, spec in sorted(specs.items())}
        emit(values, as_json, lambda: "\n".join(f"{k}: {_show(v)}" for k, v in values.items()))

    params: list[click.Parameter] = [click.Option(["--json", "as_json"], is_flag=True,
                                                  help="print JSON")]
    for spec in specs.values():
        params.append(click.Option([spec.option, _param(spec)], default=None,
                                   help=_help(spec)))
    return served(click.Command("filter-settings", callback=callback, params=params,
                         help="Show the filter settings; with options, change them (root)."))


def _help(spec: RuntimeSetting) -> str:
    hint = f" ({'|'.join(spec.choices)})" if spec.choices else ""
    return f"{spec.doc}{hint} Default: {_show(spec.default)}; {RESTORE} or -1 restores it."


def _param(spec: RuntimeSetting) -> str:
    return spec.name.replace(".", "__")


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)
