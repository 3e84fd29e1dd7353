"""``ie-cli learn`` and ``ie-cli classifier stats`` as the real console script: Maildirs,
mbox files, stdin, bad files, learning twice, forgetting, JSON, and the root check."""

from __future__ import annotations

import json
import os
import pwd
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from ie_cli.main import ie_cli
from ie_core.db import Database, migrate
from tests.fixtures.paths import IE_CLI
from tests.unit.test_bayes_classifier import corpus


class Cli:
    """``ie-cli`` in process (CliRunner) or as the real console script (``script``)."""

    def __init__(self, config: Path) -> None:
        self.config = config

    def __call__(self, *args: str, stdin: bytes | None = None) -> Result:
        result = CliRunner().invoke(ie_cli, ["--config", str(self.config), *args], input=stdin)
        return Result(result.exit_code, result.stdout, result.stderr)

    def script(self, *args: str, stdin: bytes = b"") -> Result:
        out = subprocess.run([IE_CLI, "--config", str(self.config), *args], input=stdin,
                             capture_output=True, timeout=120)
        return Result(out.returncode, out.stdout.decode(), out.stderr.decode())


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def cli(tmp_path: Path, db_url: str) -> Cli:
    config = tmp_path / "ie.toml"
    config.write_text(f'[ie]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n',
                      encoding="utf-8")
    db = Database(db_url)
    migrate.upgrade(db)
    db.dispose()
    return Cli(config)


@contextmanager
def as_nobody() -> Iterator[None]:
    """Run as ``nobody`` (real and effective uid); root is kept as the saved uid so the
    test can come back."""
    nobody = pwd.getpwnam("nobody").pw_uid
    os.setresuid(nobody, nobody, 0)
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)


def stats(cli) -> dict:
    out = cli("classifier", "stats", "--json")
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)["backends"]["builtin"]


def mbox(messages: list[bytes]) -> bytes:
    """An mbox file of corpus messages (whose own ``From `` lines are dropped first)."""
    bodies = [m.split(b"\n", 1)[1] if m.startswith(b"From ") else m for m in messages]
    return b"".join(b"From sender@example.com  Tue Aug  6 10:58:00 2002\n" + m.rstrip(b"\n")
                    + b"\n\n" for m in bodies)


def test_learn_maildir_mbox_and_stdin_then_forget(cli, tmp_path):
    spam, ham = corpus("spam"), corpus("ham")
    maildir = tmp_path / "Junk"
    for sub, messages in (("cur", spam[:3]), ("new", spam[3:5])):
        (maildir / sub).mkdir(parents=True)
        for i, m in enumerate(messages):
            (maildir / sub / f"{i}.host:2,S").write_bytes(m)
    (maildir / "tmp").mkdir()
    (maildir / "tmp" / "partial").write_bytes(spam[9])  # never read: Maildir tmp/
    box = tmp_path / "ham.mbox"
    box.write_bytes(mbox(list(ham[:4])))

    out = cli("learn", "spam", str(maildir), "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert (result["messages"], result["backends"]["builtin"]["changed"]) == (5, 5)
    assert cli("learn", "ham", str(box)).returncode == 0
    # stdin: a single message with an mbox From line on top
    piped = cli.script("learn", "ham", "-", stdin=mbox([ham[10]]))
    assert piped.returncode == 0, piped.stderr
    assert (stats(cli)["spam_messages"], stats(cli)["ham_messages"]) == (5, 5)

    again = cli("learn", "spam", str(maildir), "--json")
    assert json.loads(again.stdout)["backends"]["builtin"] == {"changed": 0, "unchanged": 5}
    assert stats(cli)["spam_messages"] == 5

    out = cli("learn", "--forget", "spam", str(maildir / "cur"))
    assert out.returncode == 0, out.stderr
    assert "forgot 3" in out.stdout
    assert stats(cli)["spam_messages"] == 2


def test_bad_files_are_reported_one_line_each_and_the_rest_is_learned(cli, tmp_path):
    good = tmp_path / "good.eml"
    good.write_bytes(corpus("spam")[0])
    empty = tmp_path / "empty.eml"
    empty.write_bytes(b"")
    binary = tmp_path / "blob.bin"
    binary.write_bytes(b"\x00\x01\x02 not mail at all\n")
    out = cli.script("learn", "spam", str(tmp_path / "missing.eml"), str(empty), str(binary),
                     str(good))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 3 and "Traceback" not in out.stderr
    assert "missing.eml" in lines[0] and "empty" in lines[1] and "not a mail" in lines[2]
    assert stats(cli)["spam_messages"] == 1


def test_stats_text_and_wrong_label_is_one_line(cli):
    out = cli("classifier", "stats")
    assert out.returncode == 0 and "builtin:" in out.stdout and "ham_messages: 0" in out.stdout
    bad = cli("learn", "eggs", "x.eml")
    assert bad.returncode != 0 and "Traceback" not in bad.stderr


def test_learning_and_stats_are_for_root_only(tmp_path):
    shared = Path(tempfile.mkdtemp(prefix="ie-learn-"))  # a config nobody can read
    try:
        os.chmod(shared, 0o755)
        config = shared / "ie.toml"
        config.write_text(f'[ie]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
        os.chmod(config, 0o644)
        with as_nobody():
            learned = Cli(config)("learn", "spam", "-", stdin=b"Subject: x\n\ny\n")
            stats_ = Cli(config)("classifier", "stats")
        for out in (learned, stats_):
            assert out.returncode != 0
            assert out.stderr.strip().splitlines() == [
                "ie-cli: error: this command is for root only"]
    finally:
        os.setresuid(0, 0, 0)
        config.unlink()
        shared.rmdir()


def _maildir(root: Path, messages: list[bytes], age_days: float, folder: str = "cur") -> None:
    for sub in ("cur", "new", "tmp"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    stamp = __import__("time").time() - age_days * 86400
    for i, raw in enumerate(messages):
        path = root / folder / f"{int(stamp)}.{i}.host:2,S"
        path.write_bytes(raw)
        os.utime(path, (stamp, stamp))


def test_learn_from_the_servers_own_mailboxes(cli: Cli, tmp_path: Path) -> None:
    """A fresh install learns from the mail it already has: Junk folders as spam, INBOX
    mail kept for days as ham; dry run first; capped per mailbox; Maildir and mbox
    (issue 16)."""
    ham, spam = list(corpus("ham")[:30]), list(corpus("spam")[:30])
    home = tmp_path / "home"
    _maildir(home / "alice" / "Maildir", ham[:12], age_days=30)        # kept: ham
    _maildir(home / "alice" / "Maildir", ham[12:15], age_days=1)       # too recent
    _maildir(home / "alice" / "Maildir" / ".Junk", spam[:8], age_days=2)
    _maildir(home / "alice" / "Maildir" / ".Junk", spam[8:10], 0, folder="new")
    mbox = home / "bob" / "mail"
    mbox.mkdir(parents=True)
    (mbox / "Junk").write_bytes(b"".join(
        b"From x@y Sat Jan  1 00:00:00 2000\n" + m.replace(b"\r\n", b"\n") + b"\n"
        for m in spam[10:16]))
    glob = [f"--mailboxes={home}/*/Maildir", f"--mailboxes={home}/*/mail"]

    dry = json.loads(cli("learn", "--from-mailboxes", *glob, "--dry-run", "--json").stdout)
    assert {(Path(b["path"]).relative_to(home).as_posix(), b["label"], b["messages"])
            for b in dry["mailboxes"]} == {("alice/Maildir", "ham", 12),
                                           ("alice/Maildir/.Junk", "spam", 10),
                                           ("bob/mail/Junk", "spam", 6)}
    assert (dry["spam"], dry["ham"], dry["backends"]) == (16, 12, {})
    stats = json.loads(cli("classifier", "stats", "--json").stdout)["backends"]["builtin"]
    assert (stats["spam_messages"], stats["ham_messages"]) == (0, 0)  # nothing learned

    capped = json.loads(cli("learn", "--from-mailboxes", *glob, "--max-per-mailbox", "5",
                            "--json").stdout)
    assert (capped["spam"], capped["ham"]) == (10, 5)
    stats = json.loads(cli("classifier", "stats", "--json").stdout)["backends"]["builtin"]
    assert (stats["spam_messages"], stats["ham_messages"]) == (10, 5)
    assert stats["progress"] == ("7% of what it needs to be ready (10 of 100 spam, "
                                 "5 of 100 ham)")


def test_learn_from_mailboxes_takes_no_label(cli: Cli) -> None:
    out = cli.script("learn", "spam", "--from-mailboxes")
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().endswith("--from-mailboxes takes no LABEL, SOURCES or --forget")
    out = cli.script("learn")
    assert out.returncode != 0 and "give LABEL (spam or ham)" in out.stderr


def test_a_long_learn_shows_progress_on_a_terminal_only(cli: Cli, tmp_path: Path) -> None:
    import pty

    folder = tmp_path / "spam"
    _maildir(folder, list(corpus("spam")[:40]), age_days=1)
    quiet = cli.script("learn", "spam", str(folder))
    assert quiet.returncode == 0 and quiet.stderr == ""  # a script sees only the summary
    pid, fd = pty.fork()
    if pid == 0:  # the child: stderr is the terminal
        os.execv(IE_CLI, [IE_CLI, "--config", str(cli.config), "learn", "--forget", "spam",
                          str(folder)])
    seen = b""
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.waitpid(pid, 0)
    assert b"\r40/40 messages, " in seen and b"/s" in seen
