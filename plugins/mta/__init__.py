"""Wiring ie into the MTA: ``ie-config enable`` / ``disable`` for Postfix and Exim, ie's
systemd units, and the "MTA wired in" status item (see docs/operations.md).

Every edit is an ie-filter region (:mod:`.managed`): enable writes atomically after
backing the files up, runs the MTA's own check and rolls back if it fails, then reloads
the MTA; a second enable changes nothing; disable takes the regions out, which restores
the files byte for byte.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

import click

from ie_core import App, ConfigKey, StatusItem, hookimpl
from ie_core.commands import emit, fail, get_app, require_root

from . import health, managed, services
from .exim import EximWiring
from .files import FileChange
from .postfix import PostfixWiring
from .wiring import CheckFailed, Conflict, Wiring, encode, ie_config_file, restored, unwired

MTAS = ("postfix", "exim")


@hookimpl
def ie_config_keys() -> Sequence[ConfigKey]:
    return [
        ConfigKey("mta", "postfix_dir", str, "/etc/postfix", "Postfix configuration directory "
                  "ie-config enable edits (master.cf) and checks with postfix -c."),
        ConfigKey("mta", "postfix_outgoing_services", list,
                  ["submission/inet", "submissions/inet", "smtps/inet", "pickup/unix"],
                  "master.cf services (NAME/TYPE) whose mail goes to the outgoing listener."),
        ConfigKey("mta", "postfix_incoming_services", list, ["smtp/inet"], "master.cf "
                  "services whose mail goes to the incoming listener (authenticated and "
                  "mynetworks clients there go to the outgoing one)."),
        ConfigKey("mta", "exim_config", str, "/etc/exim4/exim4.conf", "Exim configuration "
                  "file ie-config enable edits (a single file; Debian: see operations.md)."),
        ConfigKey("mta", "exim_binary", str, "/usr/sbin/exim4", "Exim program used for the "
                  "configuration check (exim -bV -C) and to find the daemon's pid file."),
        ConfigKey("mta", "backup_dir", str, "", "Where enable and disable keep copies of the "
                  "files they replace. Empty: DATA_DIR/mta-backups."),
        ConfigKey("mta", "template_dir", str, "", "Directory searched before ie's own "
                  "templates (MTA snippets, systemd units), for local changes."),
        ConfigKey("mta", "systemd_unit_dir", str, "/etc/systemd/system", "Where enable writes "
                  "ie's systemd units on systemd hosts."),
    ]


def wirings(app: App) -> dict[str, Wiring]:
    return {"postfix": PostfixWiring(app), "exim": EximWiring(app)}


def _backup_dir(app: App) -> Path:
    return Path(app.config.get("mta.backup_dir") or app.data_dir / "mta-backups")


def _is_wired(wiring: Wiring) -> bool:
    try:
        return any(unwired(p) is not None for p in wiring.wired_files())
    except managed.RegionError as err:
        fail(f"cannot tell whether ie is wired into {wiring.name}: {err}; "
             "repair the ie-filter markers by hand, or name the MTA with --mta")


def _choose(app: App, mta: str | None) -> Wiring:
    found = wirings(app)
    if mta:
        return found[mta]
    wired = [w for w in found.values() if _is_wired(w)]
    if len(wired) == 1:
        return wired[0]
    present = [w for w in found.values() if w.installed()]
    if len(present) == 1:
        return present[0]
    if not present:
        fail("found neither Postfix (mta.postfix_dir) nor Exim (mta.exim_config): "
             "name one with --mta")
    fail("found both Postfix and Exim configuration: name one with --mta postfix|exim")


def _apply(app: App, wiring: Wiring, changes: dict[Path, str | None], what: str) -> FileChange:
    """Write ``changes`` (``None`` removes a file), check, roll back on failure."""
    change = FileChange(_backup_dir(app) / wiring.name, time.strftime("%Y%m%dT%H%M%S"))
    try:
        for path, text in changes.items():
            if text is None:
                change.remove(path)
            else:
                change.write(path, encode(text))
        wiring.check()
    except CheckFailed as err:
        change.rollback()
        fail(f"{what} {wiring.name}: {err}; the change was rolled back, nothing changed")
    except BaseException:
        change.rollback()
        raise
    return change


@click.command("enable")
@click.option("--mta", type=click.Choice(MTAS), help="default: the MTA installed here")
@click.option("--json", "as_json", is_flag=True)
def enable(mta: str | None, as_json: bool) -> None:
    """Wire ie into the MTA (and install ie's services on systemd hosts)."""
    require_root()
    app = get_app()
    wiring = _choose(app, mta)
    try:
        changes: dict[Path, str | None] = dict(wiring.plan())
    except (Conflict, managed.RegionError) as err:
        fail(f"cannot enable {wiring.name}: {err}")
    data: dict[str, object] = {"mta": wiring.name, "changed": [], "backups": []}
    if changes:
        change = _apply(app, wiring, changes, "enable")
        data["changed"] = [str(p) for p in change.changed]
        data["backups"] = [str(p) for p in change.backups]
        data["mta_reload"] = wiring.reload()
    else:
        data["mta_reload"] = "already enabled: nothing changed"
    data["services"] = services.install(app, config_changed=ie_config_file(app) in changes)
    emit(data, as_json, lambda: "\n".join(
        [f"{wiring.name}: " + (f"changed {', '.join(map(str, data['changed']))}"  # type: ignore
                               if data["changed"] else "already wired, nothing changed"),
         *(f"backup: {b}" for b in data["backups"]),  # type: ignore[attr-defined]
         str(data["mta_reload"]), str(data["services"])]))


@click.command("disable")
@click.option("--mta", type=click.Choice(MTAS), help="default: every MTA ie is wired into")
@click.option("--json", "as_json", is_flag=True)
def disable(mta: str | None, as_json: bool) -> None:
    """Unwire ie from the MTA (files restored byte for byte) and stop ie's services."""
    require_root()
    app = get_app()
    chosen = [wirings(app)[mta]] if mta else list(wirings(app).values())
    report = []
    for wiring in chosen:
        try:
            changes = restored(wiring.extra_files() + wiring.wired_files())
        except managed.RegionError as err:
            fail(f"cannot disable {wiring.name}: {err}")
        if not changes:
            continue
        change = _apply(app, wiring, changes, "disable")
        reloaded = wiring.reload()
        report.append({"mta": wiring.name, "restored": [str(p) for p in change.changed],
                       "backups": [str(p) for p in change.backups],
                       "mta_reload": reloaded, "queue": wiring.release_queue()})
    data = {"unwired": report, "services": services.stop(app)}
    emit(data, as_json, lambda: "\n".join(
        ([*(f"{r['mta']}: restored {', '.join(r['restored'])}; {r['mta_reload']}; "
           f"{r['queue']}" for r in report)] or ["ie was not wired into any MTA: nothing changed"])
        + [str(data["services"])]))


@hookimpl
def ie_config_commands() -> Sequence[click.Command]:
    return [enable, disable]


def wiring_status(app: App) -> StatusItem:
    notes = []
    for wiring in wirings(app).values():
        try:
            if not any(unwired(p) is not None for p in wiring.wired_files()):
                continue
            if wiring.plan():
                notes.append(f"{wiring.name}: wired, but not as ie is configured now (listener "
                             "addresses or Postfix's mynetworks changed?): run ie-config enable")
                continue
        except (Conflict, managed.RegionError, OSError) as err:
            notes.append(f"{wiring.name}: {err}")
            continue
        return StatusItem("MTA wired in", True, f"{wiring.name}: " + ", ".join(
            str(p) for p in wiring.wired_files()))
    return StatusItem("MTA wired in", False, "; ".join(notes) or
                      "no MTA is wired to ie: run ie-config enable")


@hookimpl
def ie_status(app: App) -> Sequence[StatusItem]:
    return [wiring_status(app), *health.running_items(list(wirings(app).values())),
            *health.reinjection_items(app)]
