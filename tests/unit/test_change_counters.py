"""Cached read-mostly data (whitelists, the domain map, run-time settings) stays exact
across processes: a change another process or node commits (``ie-cli``, another worker)
applies to the next message, read with one query of the change counters."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from ie_core import Action, Direction, MessageContext
from ie_core.changes import ChangeCounters
from ie_core.processor import analyse
from ie_plugins.ratelimit.limits import server_settings
from ie_plugins.whitelist import store as whitelist
from tests.fixtures.daemon import write_config

CLI = str(Path(sys.executable).parent / "ie-cli")


def message(app, sender: str) -> MessageContext:
    """A dry run of the outgoing pipeline (nothing counted or held); the context, with
    the verdict's action in ``ctx.data["action"]``."""
    ctx = MessageContext(direction=Direction.OUTGOING, mail_from=sender,
                         rcpt_tos=["rcpt@example.org"], received_at=app.clock.now(),
                         raw=f"From: {sender}\r\nSubject: hi\r\n\r\nhello\r\n".encode(),
                         dry_run=True)
    ctx.data["action"] = analyse(app, ctx).action
    return ctx


def test_ie_cli_changes_apply_to_the_next_message(make_app, db_url, tmp_path):
    """ie-cli runs in a process of its own (as on a server): only the change counters
    can tell the filter's process that its cached copies are old."""
    filterd = make_app(db_url=db_url)
    filterd.changes = ChangeCounters(filterd.db, max_age=3600)  # only a message reads them
    cfg = write_config(tmp_path / "cli.toml", {"ie.data_dir": str(tmp_path / "cli-data"),
                                               "ie.database_url": filterd.config.database_url})

    def cli(*args: str) -> None:
        done = subprocess.run([CLI, "--config", str(cfg), *args], capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, done.stderr

    assert message(filterd, "a@shop.example").identity.account == "root"
    assert not whitelist.is_listed(filterd, "sender", "a@shop.example")
    assert server_settings(filterd).account == 0

    cli("domains", "set", "shop.example", "shop")
    cli("whitelist", "sender", "add", "shop.example")
    cli("am", "server-settings", "set", "--account", "7")
    assert message(filterd, "a@shop.example").identity.account == "shop"
    assert whitelist.is_listed(filterd, "sender", "a@shop.example")
    assert server_settings(filterd).account == 7

    cli("accounts", "edit", "--account", "shop", "--state", "block")
    assert message(filterd, "a@shop.example").data["action"] is Action.QUARANTINE
    cli("accounts", "edit", "--account", "shop", "--state", "active")
    assert message(filterd, "a@shop.example").data["action"] is Action.DELIVER

    cli("whitelist", "sender", "delete", "shop.example")  # a bulk delete counts too
    cli("domains", "remove", "shop.example")
    assert message(filterd, "a@shop.example").identity.account == "root"
    assert not whitelist.is_listed(filterd, "sender", "a@shop.example")


def test_unchanged_data_is_not_read_again(make_app, db_url):
    app = make_app(db_url=db_url)
    whitelist.add(app, "sender", ["example.com"])
    loads = []
    app.cached("whitelist", "test.loads", lambda: loads.append(1))
    for _ in range(3):
        message(app, "a@example.com")
        app.cached("whitelist", "test.loads", lambda: loads.append(1))
    assert loads == [1]
    whitelist.add(app, "sender", ["example.org"])
    app.cached("whitelist", "test.loads", lambda: loads.append(1))
    assert loads == [1, 1]
