"""The learn spool: reports from the IMAPSieve pipe, drained by ie-filterd.

The ``ie-learn`` wrapper (run by Dovecot as the mail user) writes each reported message
to ``SPOOL/tmp`` and renames it into ``SPOOL/new`` as
``spam.<time>.<pid>.<random>.<user in hex>`` or ``ham.…`` (the IMAP user Dovecot named;
with ``incoming.trainers`` set, reports of other users are dropped, see
:mod:`.trainers`).  The daemon (root) claims a file by renaming it into ``SPOOL/cur`` (so several
workers never learn one report twice), trains the classifiers through the ``ie_learn``
hook and deletes it.  A report whose training fails goes back to ``new`` and is retried
on the next round.  File names come from the wrapper, never from message content.
"""

from __future__ import annotations

import logging
import os
import shutil
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ie_core import App
from ie_core.background import BackgroundService
from ie_core.events import emit
from ie_plugins.incoming import trainers

log = logging.getLogger("ie.incoming")
LABELS = {"spam": True, "ham": False}
STALE_CLAIM_SECONDS = 3600
DEFAULT_SUBDIR = "learn"


def spool_dir(app: App) -> Path:
    """``incoming.learn_spool``, else ``learn/`` in the data directory: each instance on a
    host (a staging copy beside production) drains its own reports only."""
    configured = app.config.get("incoming.learn_spool")
    return Path(configured) if configured else app.config.data_dir / DEFAULT_SUBDIR


@dataclass
class DrainResult:
    learned: int = 0
    failed: int = 0
    skipped: int = 0
    refused: int = 0  # reports of users who are not trainers


def _label(name: str) -> bool | None:
    return LABELS.get(name.split(".", 1)[0])


class Unusable(Exception):
    """A spool file that is not a report the drain may learn (the reason is the text)."""


def _read_report(path: Path, max_bytes: int) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as err:
        raise Unusable(f"cannot open ({err.strerror})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Unusable("not a regular file")
        if info.st_size > max_bytes:
            raise Unusable(f"larger than incoming.learn_max_bytes ({max_bytes})")
        with os.fdopen(fd, "rb", closefd=False) as fh:
            return fh.read(max_bytes + 1)
    except OSError as err:
        raise Unusable(f"cannot read ({err.strerror})") from None
    finally:
        os.close(fd)


def _remove(path: Path) -> None:
    """Remove a claimed entry, a directory the mail user made there included (its
    symlinks are removed, never followed)."""
    try:
        path.unlink(missing_ok=True)
    except IsADirectoryError:
        shutil.rmtree(path, ignore_errors=True)


def _shown(name: str) -> str:
    """A spool file name as it goes into a log line (the mail user chose it)."""
    return "".join(c if c.isprintable() and c not in " =" else "?" for c in name)[:100]


def recover_stale(spool: Path, now: float) -> None:
    """Claims left in ``cur`` by a worker that died go back to ``new``."""
    cur = spool / "cur"
    if not cur.is_dir():
        return
    for entry in os.scandir(cur):
        try:
            if now - entry.stat(follow_symlinks=False).st_mtime > STALE_CLAIM_SECONDS:
                os.rename(entry.path, spool / "new" / entry.name)
        except OSError:
            continue


def drain(app: App, spool: Path, max_bytes: int, limit: int = 200) -> DrainResult:
    """Learn up to ``limit`` queued reports, oldest first."""
    result = DrainResult()
    new = spool / "new"
    try:
        names = sorted((e.name for e in os.scandir(new)),
                       key=lambda n: n.split(".")[1:2])[:limit]
    except FileNotFoundError:
        return result
    for name in names:
        claimed = spool / "cur" / name
        try:
            os.rename(new / name, claimed)
        except FileNotFoundError:
            continue  # another worker took it
        spam = _label(name)
        try:
            if spam is None:
                raise Unusable("name does not start with spam. or ham.")
            raw = _read_report(claimed, max_bytes)
        except Unusable as why:
            log.warning("event=learn_skipped spool=%s report=%s why=%s", spool, _shown(name),
                        why)
            _remove(claimed)
            result.skipped += 1
            continue
        user = trainers.report_user(name)
        if not trainers.may_train(app, user):
            _refuse(app, user, spam)
            claimed.unlink(missing_ok=True)
            result.refused += 1
            continue
        try:
            app.hooks.learn(app, raw, spam)
        except Exception as err:
            log.error("event=learn_failed report=%s error=%s: %s", name, type(err).__name__, err)
            os.rename(claimed, new / name)
            result.failed += 1
            break  # the classifier is probably down; retry next round
        claimed.unlink(missing_ok=True)
        result.learned += 1
        log.info("event=learned label=%s size=%d source=imapsieve user=%s",
                 "spam" if spam else "ham", len(raw), _shown(user or "-"))
    return result


LEARN_REFUSED = "learn_refused"
"""Outbox event: a report from a user outside ``incoming.trainers`` was dropped."""


def _refuse(app: App, user: str | None, spam: bool) -> None:
    label = "spam" if spam else "ham"
    shown = _shown(user or "-")
    log.warning("event=learn_refused user=%s label=%s reason=not_a_trainer", shown, label)
    with app.db.session() as s:
        emit(s, app.clock, LEARN_REFUSED, None, {"user": shown, "label": label})


def drainer(app: App) -> BackgroundService:
    """The service that drains the spool every ``incoming.learn_interval`` seconds
    (reports a crashed drain had claimed are put back first)."""
    spool = spool_dir(app)
    max_bytes = app.config.get("incoming.learn_max_bytes")

    def run(stop: threading.Event) -> None:
        recover_stale(spool, time.time())
        while not stop.wait(app.config.get("incoming.learn_interval")):
            try:
                drain(app, spool, max_bytes)
            except Exception:
                log.exception("event=learn_spool_error spool=%s", spool)

    return BackgroundService("learn-spool", run)
