"""Incoming filtering end to end: real Postfix -> ie-filterd -> Postfix -> Dovecot LMTP ->
Sieve, checked over IMAP; learning from Junk moves through IMAPSieve.

The verdicts come from the real ``classify`` stage: GTUBE is spam whatever the backend
says, and the built-in classifier is trained in each test that needs it with
``ie-cli learn`` on 150 ham and 150 spam of the development corpus (``IE_CORPUS``, else
``../shared/corpus`` next to the repository).  The corpus messages sent through the stack
are never among the trained ones.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from ie_cli.config_main import ie_config
from ie_cli.main import ie_cli
from ie_core import ManualClock
from tests.fixtures.dovecot import Dovecot, require_dovecot
from tests.fixtures.paths import corpus_folder
from tests.fixtures.postfix_incoming import IncomingPostfix, require_postfix
from tests.fixtures.sink import free_port

pytestmark = pytest.mark.mta

ALICE, BOB, CAROL = "alice@example.test", "bob@example.test", "carol@other.test"
GTUBE = "XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
TRAIN = 150  # of each label: past bayes.min_ham/min_spam (100), learned in about a second
STRIDE = 4  # message i of a label is trained when i % STRIDE == 0 (and i < STRIDE * TRAIN)
UNSEEN = 1  # the corpus messages sent through the stack: index UNSEEN, never trained
SCORE_SHIFT = 5.0  # points one learned report moves its own message's score, at least


@cache
def corpus_files(label: str) -> tuple[Path, ...]:
    return tuple(sorted(corpus_folder(label).glob("*.eml")))


def training_files(label: str) -> list[str]:
    return [str(p) for p in corpus_files(label)[::STRIDE][:TRAIN]]


def corpus_message(label: str, subject: str, extra: str = "") -> bytes:
    """The unseen corpus message of ``label`` as a sender would submit it: without the mbox
    ``From `` line, with ``subject`` (to find it over IMAP) and ``extra`` headers on top,
    CRLF line ends."""
    raw = corpus_files(label)[UNSEEN].read_bytes().replace(b"\r\n", b"\n")
    if raw.startswith(b"From "):
        raw = raw.split(b"\n", 1)[1]
    head, sep, body = raw.partition(b"\n\n")
    head = re.sub(rb"(?im)^subject:.*\n(?:[ \t].*\n)*", b"", head + b"\n")
    raw = extra.replace("\r\n", "\n").encode() + b"Subject: " + subject.encode() + b"\n" \
        + head + b"\n" + body
    return raw.replace(b"\n", b"\r\n")


def message(subject: str, body: str = "Hello, see you tomorrow.", extra: str = "") -> bytes:
    return (f"From: Someone <someone@outside.test>\r\nTo: you@example.test\r\n"
            f"Subject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@outside.test>\r\n"
            f"{extra}\r\n{body}\r\n").encode()


def gtube(subject: str) -> bytes:
    return message(subject, f"This is the GTUBE, the\r\n{GTUBE}")


@dataclass
class Stack:
    dovecot: Dovecot
    postfix: IncomingPostfix
    config: Path
    tmp: Path

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(ie_cli, ["--config", str(self.config), *args])
        assert result.exit_code == 0, result.output
        return result.output

    def config_cmd(self, *args: str) -> str:
        result = CliRunner().invoke(ie_config, ["--config", str(self.config), *args])
        assert result.exit_code == 0, result.output
        return result.output

    def train(self) -> None:
        for label in ("ham", "spam"):
            out = json.loads(self.cli("learn", label, "--json", *training_files(label)))
            assert (out["messages"], out["failed"]) == (TRAIN, 0), out
        assert self.classifier_counts() == (TRAIN, TRAIN)

    def classifier_counts(self) -> tuple[int, int]:
        """(ham, spam) messages the built-in classifier has learned."""
        builtin = json.loads(self.cli("classifier", "stats", "--json"))["backends"]["builtin"]
        return builtin["ham_messages"], builtin["spam_messages"]

    def wait_counts(self, expected: tuple[int, int], timeout: float = 10) -> None:
        """Wait until the daemon drained the learn spool into the classifier."""
        deadline = time.monotonic() + timeout
        while (counts := self.classifier_counts()) != expected:
            if time.monotonic() > deadline:
                raise AssertionError(f"classifier learned (ham, spam) = {counts}, expected "
                                     f"{expected}; spool: {self.spool_files()}")
            time.sleep(0.1)

    def spool_files(self) -> list[str]:
        spool = self.dovecot.root / "spool"
        return sorted(str(p.relative_to(spool)) for p in spool.rglob("*") if p.is_file())

    def score(self, raw: bytes, rcpt: str = ALICE) -> float:
        """The classify stage's score for ``raw`` (``ie-cli check``, nothing delivered)."""
        path = self.tmp / "check.eml"
        path.write_bytes(raw)
        out = json.loads(self.cli("check", "--direction", "incoming", "--rcpt", rcpt,
                                  "--json", str(path)))
        scores = [f["score"] for f in out["findings"] if f["stage"] == "classify"]
        assert len(scores) == 1, out
        return float(scores[0])

    def send(self, raw: bytes, *rcpts: str) -> None:
        self.postfix.send(raw, list(rcpts))

    def wait(self, user: str, mailbox: str, subject: str) -> None:
        try:
            self.dovecot.wait_for(user, mailbox, subject)
        except AssertionError as err:
            raise AssertionError(f"{err}\n{self.postfix.log_text()[-3000:]}") from None


@contextmanager
def incoming_stack(run_daemon: Callable[..., Any], tmp_path: Path, db_url: str,
                   users: list[str], domains: list[str], *, config: Path | None = None,
                   incoming: str = "", sections: str = "", plugins: Sequence[Any] = (),
                   **settings: Any) -> Iterator[Stack]:
    """Internet -> Postfix -> ie-filterd -> Postfix -> Dovecot LMTP for ``users``:
    the daemon (and ``ie-cli`` through ``config``, default ``tmp_path/ie.toml``) on
    ``db_url``; ``incoming`` adds lines to the ``[incoming]`` section, ``sections`` whole
    sections, ``settings`` the daemon's own values."""
    require_dovecot()
    require_postfix()
    dovecot = Dovecot(users).start()
    filter_port = free_port()
    try:
        postfix = IncomingPostfix(filter_port, dovecot.lmtp_port, domains).start()
    except BaseException:
        dovecot.stop()
        raise
    try:
        config = config or tmp_path / "ie.toml"
        config.write_text(
            f'[ie]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n'
            f'[incoming]\ndovecot_config = "{dovecot.config}"\n'
            f'dovecot_conf_d = "{dovecot.conf_d}"\nsieve_dir = "{dovecot.root}/sieve"\n'
            f'learn_spool = "{dovecot.root}/spool"\n{incoming}'
            + sections.replace("{reinject}", postfix.reinject))
        run_daemon(config=config, db_url=db_url, plugins=list(plugins), **{
            "filter.incoming_listen": f"127.0.0.1:{filter_port}",
            "filter.incoming_reinject": postfix.reinject, **settings})
        yield Stack(dovecot, postfix, config, tmp_path)
    finally:
        postfix.stop()
        dovecot.stop()


@pytest.fixture
def stack(run_daemon: Callable[..., Any], tmp_path: Path, clock: ManualClock,
          db_url: str) -> Iterator[Stack]:
    """The whole path on each database backend: the daemon, ``ie-cli`` and the learn
    spool's drain share ``db_url``."""
    # ie-cli (a real clock) reads the daily counts the daemon (the test clock) wrote
    clock.advance(seconds=(datetime.now(UTC) - clock.now()).total_seconds())
    with incoming_stack(run_daemon, tmp_path, db_url, [ALICE, BOB, CAROL],
                        ["example.test", "other.test"], incoming="learn_interval = 0.1\n") as st:
        yield st


def test_junk_routing_per_recipient_whitelist_forgery_and_stats(stack: Stack) -> None:
    before = stack.dovecot.doveconf()
    out = stack.config_cmd("enable-incoming")
    assert "incoming filtering: on" in out
    stack.cli("domains", "set", "example.test", "acme")
    stack.cli("domains", "set", "other.test", "beta")
    stack.cli("accounts", "edit", "-a", "beta", "--incoming", "off")
    stack.cli("whitelist", "recipient", "add", BOB)
    stack.train()

    stack.send(gtube("gtube one"), ALICE)
    stack.send(corpus_message("spam", "corpus spam"), ALICE)
    stack.send(corpus_message("ham", "corpus ham"), ALICE)
    stack.send(corpus_message("ham", "forged ham", extra="X-Spam: Yes\r\nX-Spam-Flag: YES\r\n"
                                                         "X-IE-Junk: all\r\n"), ALICE)
    stack.send(corpus_message("spam", "spam shared"), ALICE, CAROL)
    stack.send(gtube("gtube to carol"), CAROL)
    stack.send(gtube("gtube to bob"), BOB)
    stack.send(corpus_message("spam", "spam to bob"), BOB)

    stack.wait(ALICE, "Junk", "gtube one")
    stack.wait(ALICE, "Junk", "corpus spam")
    stack.wait(ALICE, "INBOX", "corpus ham")
    stack.wait(ALICE, "INBOX", "forged ham")
    stack.wait(ALICE, "Junk", "spam shared")
    stack.wait(CAROL, "INBOX", "spam shared")  # beta opted out: not in Junk for carol
    stack.wait(CAROL, "INBOX", "gtube to carol")
    stack.wait(BOB, "INBOX", "gtube to bob")  # whitelisted recipient
    stack.wait(BOB, "INBOX", "spam to bob")
    assert sorted(stack.dovecot.subjects(ALICE, "Junk")) == [
        "corpus spam", "gtube one", "spam shared"]
    assert sorted(stack.dovecot.subjects(ALICE, "INBOX")) == ["corpus ham", "forged ham"]
    assert stack.dovecot.subjects(CAROL, "Junk") == []
    assert stack.dovecot.subjects(BOB, "Junk") == []

    rows = json.loads(stack.cli("stats", "incoming", "--json"))["items"]
    by_account = {r["account"]: r for r in rows}
    assert len(rows) == 2, rows  # one day, two accounts
    # acme: gtube one, corpus spam, spam shared (junk); corpus ham, forged ham (legit);
    # gtube to bob and spam to bob only reached a whitelisted recipient (unfiltered).
    # beta: spam shared and gtube to carol, opted out.
    assert {k: by_account["acme"][k] for k in ("spam", "legitimate", "unfiltered")} == {
        "spam": 3, "legitimate": 2, "unfiltered": 2}
    assert {k: by_account["beta"][k] for k in ("spam", "legitimate", "unfiltered")} == {
        "spam": 0, "legitimate": 0, "unfiltered": 2}
    assert stack.cli("stats", "incoming", "--account", "beta").count("unfiltered=2") == 1

    stack.config_cmd("disable-incoming", "--purge")
    assert stack.dovecot.doveconf() == before


def test_incoming_off_delivers_everything_to_inbox(stack: Stack) -> None:
    stack.config_cmd("enable-incoming")
    stack.train()
    stack.send(corpus_message("spam", "spam while on"), ALICE)
    stack.wait(ALICE, "Junk", "spam while on")
    stack.config_cmd("disable-incoming")
    time.sleep(2.1)  # the daemon caches run-time settings for up to 2 seconds
    stack.send(gtube("gtube while off"), ALICE)
    stack.send(corpus_message("spam", "spam while off"), ALICE)
    stack.send(corpus_message("ham", "ham while off"), ALICE)
    stack.wait(ALICE, "INBOX", "gtube while off")
    stack.wait(ALICE, "INBOX", "spam while off")
    stack.wait(ALICE, "INBOX", "ham while off")
    assert stack.dovecot.subjects(ALICE, "Junk") == ["spam while on"]


def _move(imap: Any, mailbox: str, subject: str, target: str) -> None:
    """MOVE the message with ``subject`` from ``mailbox`` to ``target``; learning is only
    queued by the move, so it returns at once."""
    typ, _ = imap.select(mailbox)
    assert typ == "OK"
    _, data = imap.uid("SEARCH", "SUBJECT", f'"{subject}"')
    uids = data[0].split()
    assert len(uids) == 1, (mailbox, subject, data)
    started = time.monotonic()
    typ, _ = imap.uid("MOVE", uids[0], target)
    assert typ == "OK"
    assert time.monotonic() - started < 2


def test_imapsieve_moves_train_spam_and_ham_not_trash(stack: Stack) -> None:
    stack.config_cmd("enable-incoming")
    stack.train()
    ham, spam = corpus_message("ham", "looks fine"), corpus_message("spam", "was spam")
    stack.send(ham, ALICE)
    stack.send(spam, ALICE)
    stack.wait(ALICE, "INBOX", "looks fine")
    stack.wait(ALICE, "Junk", "was spam")
    ham_score, spam_score = stack.score(ham), stack.score(spam)
    assert ham_score < 5 <= spam_score

    imap = stack.dovecot.imap(ALICE)
    try:
        _move(imap, "INBOX", "looks fine", "Junk")  # the user says: this is spam
        stack.wait_counts((TRAIN, TRAIN + 1))
        assert stack.score(ham) > ham_score + SCORE_SHIFT

        _move(imap, "Junk", "was spam", "INBOX")  # the user says: this is not spam
        stack.wait_counts((TRAIN + 1, TRAIN + 1))
        assert stack.score(spam) < spam_score - SCORE_SHIFT

        _move(imap, "Junk", "looks fine", "Trash")  # deleting says nothing
        # A report is queued inside the IMAP command, so once a later report is learned an
        # earlier one would have been too: append one message into Junk and wait for it.
        typ, _ = imap.append("Junk", "", None, message("appended spam"))
        assert typ == "OK"
        stack.wait_counts((TRAIN + 1, TRAIN + 2))
    finally:
        imap.logout()
    assert stack.dovecot.subjects(ALICE, "Trash") == ["looks fine"]
    assert stack.spool_files() == []


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
