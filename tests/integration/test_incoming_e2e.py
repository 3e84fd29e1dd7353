"""Incoming filtering end to end: real Postfix -> ie-filterd -> Postfix -> Dovecot LMTP ->
Sieve, checked over IMAP; learning from Junk moves through IMAPSieve.

The junk verdict here comes from a small stage (``spam-marker``) so these tests pin the
routing contract: any finding with action JUNK for incoming mail sends it to Junk.  The
real classifier is exercised in ``test_incoming_classifier.py``.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ie_cli.config_main import ie_config
from ie_cli.main import ie_cli
from ie_core import Action, Direction, Finding, ManualClock, MessageContext, Stage, hookimpl
from tests.fixtures.dovecot import Dovecot, require_dovecot
from tests.fixtures.postfix_incoming import IncomingPostfix, require_postfix
from tests.fixtures.sink import free_port

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@other.test"
SPAM_MARK = b"MARKER-SPAM-7c1f"


@dataclass
class SpamMarker:
    """Junks incoming mail that carries SPAM_MARK; records what it is asked to learn."""

    learned: list[tuple[bool, bytes]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _check(self, ctx: MessageContext) -> Finding | None:
        if SPAM_MARK in ctx.raw:
            return Finding("spam-marker", reason="spam", score=10.0, action=Action.JUNK)
        return None

    @hookimpl
    def ie_stages(self, app: Any) -> list[Stage]:
        return [Stage("spam-marker", self._check, frozenset({Direction.INCOMING}), 400)]

    @hookimpl
    def ie_learn(self, app: Any, raw: bytes, spam: bool) -> None:
        with self.lock:
            self.learned.append((spam, raw))


def message(subject: str, body: str = "Hello, see you tomorrow.", extra: str = "") -> bytes:
    return (f"From: Someone <someone@outside.test>\r\nTo: you@example.test\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@outside.test>\r\n"
            f"{extra}\r\n{body}\r\n").encode()


@dataclass
class Stack:
    dovecot: Dovecot
    postfix: IncomingPostfix
    config: Path
    marker: SpamMarker
    app: Any

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(ie_cli, ["--config", str(self.config), *args])
        assert result.exit_code == 0, result.output
        return result.output

    def config_cmd(self, *args: str) -> str:
        result = CliRunner().invoke(ie_config, ["--config", str(self.config), *args])
        assert result.exit_code == 0, result.output
        return result.output

    def send(self, raw: bytes, *rcpts: str) -> None:
        self.postfix.send(raw, list(rcpts))

    def wait(self, user: str, mailbox: str, subject: str) -> None:
        try:
            self.dovecot.wait_for(user, mailbox, subject)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.postfix.log_text()[-3000:]}") from None


@pytest.fixture
def stack(run_daemon: Callable[..., Any], tmp_path: Path, clock: ManualClock) -> Iterator[Stack]:
    # ie-cli (a real clock) reads the daily counts the daemon (the test clock) wrote
    clock.advance(seconds=(datetime.now(UTC) - clock.now()).total_seconds())
    require_dovecot()
    require_postfix()
    dovecot = Dovecot([ALICE, BOB, CAROL]).start()
    filter_port = free_port()
    postfix = IncomingPostfix(filter_port, dovecot.lmtp_port,
                              ["example.test", "other.test"]).start()
    try:
        config = tmp_path / "ie.toml"
        config.write_text(
            f'[ie]\ndata_dir = "{tmp_path / "data"}"\n'
            f'[incoming]\ndovecot_config = "{dovecot.config}"\n'
            f'dovecot_conf_d = "{dovecot.conf_d}"\nsieve_dir = "{dovecot.root}/sieve"\n'
            f'learn_spool = "{dovecot.root}/spool"\nlearn_interval = 0.1\n')
        marker = SpamMarker()
        daemon = run_daemon(plugins=[("spam-marker", marker)], config=config, **{
            "filter.incoming_listen": f"127.0.0.1:{filter_port}",
            "filter.incoming_reinject": postfix.reinject})
        yield Stack(dovecot, postfix, config, marker, daemon.app)
    finally:
        postfix.stop()
        dovecot.stop()


def test_junk_routing_per_recipient_whitelist_forgery_and_stats(stack: Stack) -> None:
    before = stack.dovecot.doveconf()
    out = stack.config_cmd("enable-incoming")
    assert "incoming filtering: on" in out
    stack.cli("domains", "set", "example.test", "acme")
    stack.cli("domains", "set", "other.test", "beta")
    stack.cli("accounts", "edit", "-a", "beta", "--incoming", "off")
    stack.cli("whitelist", "recipient", "add", BOB)

    stack.send(message("spam one", SPAM_MARK.decode()), ALICE)
    stack.send(message("ham one"), ALICE)
    stack.send(message("forged ham", extra="X-Spam: Yes\r\nX-Spam-Flag: YES\r\n"
                                           "X-IE-Junk: all\r\n"), ALICE)
    stack.send(message("spam shared", SPAM_MARK.decode()), ALICE, CAROL)
    stack.send(message("spam to bob", SPAM_MARK.decode()), BOB)

    stack.wait(ALICE, "Junk", "spam one")
    stack.wait(ALICE, "INBOX", "ham one")
    stack.wait(ALICE, "INBOX", "forged ham")
    stack.wait(ALICE, "Junk", "spam shared")
    stack.wait(CAROL, "INBOX", "spam shared")  # beta opted out: not in Junk for carol
    stack.wait(BOB, "INBOX", "spam to bob")  # whitelisted recipient
    assert sorted(stack.dovecot.subjects(ALICE, "Junk")) == ["spam one", "spam shared"]
    assert stack.dovecot.subjects(CAROL, "Junk") == []
    assert stack.dovecot.subjects(BOB, "Junk") == []

    import json

    rows = json.loads(stack.cli("stats", "incoming", "--json"))["items"]
    by_account = {r["account"]: r for r in rows}
    # acme: spam one, spam shared (junk); ham one, forged ham (legit); spam to bob only
    # reached a whitelisted recipient (unfiltered).  beta: spam shared, opted out.
    assert by_account["acme"]["spam"] == 2
    assert by_account["acme"]["legitimate"] == 2
    assert by_account["acme"]["unfiltered"] == 1
    assert (by_account["beta"]["spam"], by_account["beta"]["unfiltered"]) == (0, 1)
    assert stack.cli("stats", "incoming", "--account", "beta").count("unfiltered=1") == 1

    stack.config_cmd("disable-incoming", "--purge")
    assert stack.dovecot.doveconf() == before


def test_incoming_off_delivers_everything_to_inbox(stack: Stack) -> None:
    stack.config_cmd("enable-incoming")
    stack.send(message("spam while on", SPAM_MARK.decode()), ALICE)
    stack.wait(ALICE, "Junk", "spam while on")
    stack.config_cmd("disable-incoming")
    time.sleep(2.1)  # the daemon caches run-time settings for up to 2 seconds
    stack.send(message("spam while off", SPAM_MARK.decode()), ALICE)
    stack.send(message("ham while off"), ALICE)
    stack.wait(ALICE, "INBOX", "spam while off")
    stack.wait(ALICE, "INBOX", "ham while off")
    assert stack.dovecot.subjects(ALICE, "Junk") == ["spam while on"]


def _wait_learned(marker: SpamMarker, count: int, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while len(marker.learned) < count and time.monotonic() < deadline:
        time.sleep(0.05)


def test_imapsieve_moves_train_spam_and_ham_not_trash(stack: Stack) -> None:
    stack.config_cmd("enable-incoming")
    stack.send(message("looks fine"), ALICE)
    stack.send(message("was spam", SPAM_MARK.decode()), ALICE)
    stack.wait(ALICE, "INBOX", "looks fine")
    stack.wait(ALICE, "Junk", "was spam")
    imap = stack.dovecot.imap(ALICE)
    try:
        imap.select("INBOX")
        _, data = imap.uid("SEARCH", "ALL")
        started = time.monotonic()
        typ, _ = imap.uid("MOVE", data[0].split()[0], "Junk")
        assert typ == "OK"
        assert time.monotonic() - started < 2  # learning is queued, not done in the MOVE
        _wait_learned(stack.marker, 1)
        assert [(s, b"looks fine" in raw) for s, raw in stack.marker.learned] == [(True, True)]

        imap.select("Junk")
        _, data = imap.uid("SEARCH", "SUBJECT", '"was spam"')
        imap.uid("MOVE", data[0].split()[0], "INBOX")
        _wait_learned(stack.marker, 2)
        assert stack.marker.learned[1][0] is False
        assert b"was spam" in stack.marker.learned[1][1]

        _, data = imap.uid("SEARCH", "SUBJECT", '"looks fine"')
        imap.uid("MOVE", data[0].split()[0], "Trash")
        time.sleep(1.0)
        assert len(stack.marker.learned) == 2  # Junk -> Trash trains nothing
    finally:
        imap.logout()
    assert stack.dovecot.subjects(ALICE, "Trash") == ["looks fine"]


def test_enable_twice_is_byte_identical_and_scripts_compile(stack: Stack) -> None:
    def snapshot() -> dict[str, tuple[bytes, float]]:
        files = [*stack.dovecot.conf_d.iterdir(), *(stack.dovecot.root / "sieve").rglob("*")]
        return {str(p): (p.read_bytes(), p.stat().st_mtime) for p in files if p.is_file()}

    ie_config_bin = str(Path(sys.executable).parent / "ie-config")
    proc = subprocess.run([ie_config_bin, "--config", str(stack.config),
                           "enable-incoming"], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    first = snapshot()
    assert any(p.endswith("99-ie-incoming.conf") for p in first)
    assert sum(p.endswith(".svbin") for p in first) == 3
    proc = subprocess.run([ie_config_bin, "--config", str(stack.config),
                           "enable-incoming", "--json"], capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stderr
    assert '"changed": []' in proc.stdout
    assert snapshot() == first
    for script in (stack.dovecot.root / "sieve").glob("*.sieve"):
        check = subprocess.run(["sievec", "-c", str(stack.dovecot.config), str(script),
                                str(stack.dovecot.root / "check.svbin")],
                               capture_output=True, text=True, check=False)
        assert check.returncode == 0, (script, check.stderr)
