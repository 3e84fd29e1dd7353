"""``ie-config status`` items of the classifiers (one per direction) and of the send limits,
through the real console script against real rspamd and spamd daemons (and closed ports).

``ie-config status`` also checks the listeners, the MTA wiring and the database, which
these tests do not control: they assert on the classifier items, and on the exit code only
where a required classifier item fails (which alone makes it non-zero).
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.classifier_messages import ham, spam
from tests.fixtures.daemon import BIN, write_config
from tests.fixtures.netdaemon import ScriptedServer
from tests.fixtures.rspamd import RspamdDaemon, rspamd_daemon  # noqa: F401 (fixture)
from tests.fixtures.sink import free_port
from tests.fixtures.spamd import SpamdDaemon, spamd_daemon  # noqa: F401 (fixture)


@pytest.fixture
def status(make_app, tmp_path: Path):
    """``status(**config)`` -> (exit code, {item name: item}, text output) from the real
    ``ie-config status --json`` (and without ``--json`` for the text when ``text=True``),
    on a migrated database (``db_url`` when given)."""

    def run(db_url: str | None = None, text: bool = False,
            **config: Any) -> tuple[int, dict[str, Any], str]:
        values: dict[str, Any] = {
            "ie.data_dir": str(tmp_path / "data"),
            "quarantine.cli_socket": str(tmp_path / "cli.sock"),
            "filter.outgoing_listen": f"127.0.0.1:{free_port()}",
            "filter.incoming_listen": f"127.0.0.1:{free_port()}",
            **({"ie.database_url": db_url} if db_url else {}), **config}
        make_app(**values)  # creates and migrates the database
        path = write_config(tmp_path / "status.toml", values)
        args = [str(BIN / "ie-config"), "--config", str(path), "status"]
        done = subprocess.run([*args, "--json"], capture_output=True, text=True, timeout=60)
        assert done.stdout, done.stderr
        items = {i["name"]: i for i in json.loads(done.stdout)["items"]}
        shown = subprocess.run(args, capture_output=True, text=True, timeout=60).stdout \
            if text else ""
        return done.returncode, items, shown

    return run


def test_rspamd_down_fails_the_status_naming_the_classifier(status) -> None:
    closed = f"127.0.0.1:{free_port()}"
    code, items, text = status(text=True, **{"classify.outgoing_backend": "rspamd",
                                             "rspamd.address": closed,
                                             "rspamd.controller": closed})
    item = items["classifier outgoing"]
    assert (item["ok"], item["required"]) == (False, True)  # outgoing fallback: tempfail
    assert item["detail"].startswith("rspamd: ") and closed in item["detail"]
    assert code != 0
    assert f"FAIL classifier outgoing: rspamd: rspamd at {closed}" in text


def test_rspamd_up_is_ok(status, rspamd_daemon: RspamdDaemon) -> None:  # noqa: F811
    _, items, text = status(text=True, **{"classify.outgoing_backend": "rspamd",
                                          "classify.incoming_backend": "rspamd",
                                          "rspamd.address": rspamd_daemon.address,
                                          "rspamd.controller": rspamd_daemon.controller,
                                          "rspamd.password": rspamd_daemon.password})
    for direction in ("outgoing", "incoming"):
        item = items[f"classifier {direction}"]
        assert item["ok"], item
        assert item["detail"] == f"rspamd {rspamd_daemon.address}"
    assert f"OK   classifier outgoing: rspamd {rspamd_daemon.address}" in text


def test_a_backend_down_where_the_fallback_passes_is_shown_but_not_required(status) -> None:
    closed = f"127.0.0.1:{free_port()}"
    code, items, _ = status(**{"classify.outgoing_backend": "builtin",
                               "classify.incoming_backend": "spamassassin",
                               "spamassassin.address": closed})
    item = items["classifier incoming"]
    assert (item["ok"], item["required"]) == (False, False)  # incoming fallback: pass
    assert closed in item["detail"] and "fallback pass" in item["detail"]
    assert items["classifier outgoing"]["ok"]


def test_spamd_up_is_ok_and_a_tempfail_fallback_makes_it_required(
        status, spamd_daemon: SpamdDaemon) -> None:  # noqa: F811
    _, items, _ = status(**{"classify.incoming_backend": "spamassassin",
                            "classify.incoming_fallback": "tempfail",
                            "spamassassin.address": spamd_daemon.address})
    item = items["classifier incoming"]
    assert (item["ok"], item["required"]) == (True, True)
    assert item["detail"] == f"spamassassin {spamd_daemon.address}"


def test_a_hung_backend_is_given_up_on_quickly(status) -> None:
    hung = ScriptedServer(reply=None)
    try:
        started = time.monotonic()
        code, items, _ = status(**{"classify.outgoing_backend": "rspamd",
                                   "rspamd.address": hung.address,
                                   "rspamd.controller": hung.address, "rspamd.timeout": 30.0})
        assert not items["classifier outgoing"]["ok"]
        assert code != 0
        assert time.monotonic() - started < 15  # 30 s without the short status timeout
    finally:
        hung.close()


def test_builtin_reports_what_it_learned_and_unsure_is_no_failure(
        status, make_app, db_url: str) -> None:
    _, items, _ = status(db_url)
    item = items["classifier outgoing"]
    assert item["ok"] and item["required"]
    # says what to run (issue 16: a fresh install's classifier does nothing until trained)
    assert item["detail"] == ("builtin learned 0 ham, 0 spam; unsure until it has learned "
                              "100 ham and 100 spam: run 'ie-cli learn --from-mailboxes "
                              "--dry-run', then without --dry-run (or ie-cli learn spam|ham "
                              "DIR)")
    app = make_app(db_url=db_url)
    app.hooks.learn(app, ham(), False)
    app.hooks.learn(app, spam(), True)
    _, items, _ = status(db_url, **{"bayes.min_ham": 1, "bayes.min_spam": 1})
    assert items["classifier outgoing"]["detail"] == "builtin learned 1 ham, 1 spam"
    assert items["classifier incoming"] == {**items["classifier outgoing"],
                                            "name": "classifier incoming", "required": False}


def test_an_unknown_backend_fails_the_status(status) -> None:
    code, items, _ = status(**{"classify.outgoing_backend": "nosuch"})
    item = items["classifier outgoing"]
    assert not item["ok"] and "nosuch" in item["detail"]
    assert code != 0


def test_send_limit_auto_release_is_shown(status, make_app) -> None:
    _, items, _ = status()
    item = items["send limits auto-release"]
    assert (item["ok"], item["required"]) == (True, False)
    assert item["detail"].startswith("off; 0 message(s)")
    app = make_app()
    app.settings.set("ratelimit.auto_release", True)
    _, items, _ = status()
    assert items["send limits auto-release"]["detail"].startswith("on;")
