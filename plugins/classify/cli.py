"""``ie-cli learn`` and ``ie-cli classifier stats``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import Any

import click

from ie_core import App, InvalidInput
from ie_core.classifier import Classifier, ClassifierUnavailable
from ie_core.commands import echo_err, emit, fail, get_app, require_root, served
from ie_core.durations import parse_duration
from ie_plugins.classify import mailboxes
from ie_plugins.classify.progress import Progress
from ie_plugins.classify.sources import Item, count_files, read_sources
from ie_plugins.classify.stage import configured_backends

BATCH = 500  # messages per training transaction (backends that train in bulk)


@click.command("learn")
@click.argument("label", type=click.Choice(["spam", "ham"]), required=False)
@click.argument("sources", nargs=-1)
@click.option("--forget", is_flag=True, help="undo an earlier learn of these messages")
@click.option("--from-mailboxes", is_flag=True,
              help="learn from the server's own mail: Junk folders as spam, INBOX messages "
                   "older than --ham-older-than as ham")
@click.option("--mailboxes", "patterns", multiple=True,
              help="where the mailboxes are (glob; repeatable; default "
                   "classify.learn_mailboxes)")
@click.option("--junk", default="Junk", show_default=True, help="the Junk folder's name")
@click.option("--ham-older-than", default="7d", show_default=True,
              help="INBOX messages kept at least this long count as ham")
@click.option("--max-per-mailbox", default=200, show_default=True,
              type=click.IntRange(1, 100000), help="at most this many from each mailbox")
@click.option("--dry-run", is_flag=True, help="say what would be learned, learn nothing")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def learn(label: str | None, sources: tuple[str, ...], forget: bool, from_mailboxes: bool,
          patterns: tuple[str, ...], junk: str, ham_older_than: str, max_per_mailbox: int,
          dry_run: bool, as_json: bool) -> None:
    """Train the configured classifiers with messages (files, Maildirs, mbox files, -),
    or with --from-mailboxes from the server's own Junk folders and old INBOX mail."""
    require_root()
    app = get_app()
    if from_mailboxes:
        if label or sources or forget:
            raise InvalidInput("--from-mailboxes takes no LABEL, SOURCES or --forget")
        learn_from_mailboxes(app, patterns or tuple(app.config.get("classify.learn_mailboxes")),
                             junk, parse_duration(ham_older_than, "--ham-older-than"),
                             max_per_mailbox, dry_run, as_json)
        return
    if label is None:
        raise InvalidInput("give LABEL (spam or ham) and SOURCES, or --from-mailboxes")
    spam = label == "spam"
    backends = configured_backends(app)
    totals = {b.name: {"changed": 0, "unchanged": 0} for b in backends}
    read = failed = 0
    progress = Progress(count_files(sources), enabled=None if not as_json else False)
    for batch in _batches(read_sources(sources)):
        good = [item.raw for item in batch if item.raw is not None]
        for item in batch:
            if item.raw is None:
                failed += 1
                echo_err(f"ie-cli: {item.where}: {item.error}")
        read += len(good)
        _train_all(backends, good, spam, forget, totals)
        progress.advance(len(batch))
    progress.finish()
    verb = "forgot" if forget else "learned"
    data = {"label": label, "forget": forget, "messages": read, "failed": failed,
            "backends": totals}

    def text() -> str:
        parts = [f"{name}: {verb} {t['changed']}, unchanged {t['unchanged']}"
                 for name, t in totals.items()]
        return f"{read} {label} messages read, {failed} failed; " + "; ".join(parts)

    emit(data, as_json, text)
    if failed:
        raise click.exceptions.Exit(1)


def learn_from_mailboxes(app: App, patterns: tuple[str, ...], junk: str, keep: timedelta,
                         limit: int, dry_run: bool, as_json: bool) -> None:
    boxes = mailboxes.find(patterns, junk)
    now = app.clock.now()
    backends = [] if dry_run else configured_backends(app)
    totals = {b.name: {"changed": 0, "unchanged": 0} for b in backends}
    counts = {"spam": 0, "ham": 0}
    listed = []
    progress = Progress(None, enabled=None if not as_json else False)
    for box in boxes:
        raws = mailboxes.messages(box, keep, limit, now)
        listed.append({"path": str(box.path), "label": box.label, "messages": len(raws)})
        counts[box.label] += len(raws)
        for start in range(0, len(raws), BATCH):
            batch = raws[start:start + BATCH]
            _train_all(backends, batch, box.spam, False, totals)
            progress.advance(len(batch))
    progress.finish()
    data = {"dry_run": dry_run, "mailboxes": listed, **counts, "backends": totals}

    def text() -> str:
        lines = [f"{b['label']:4} {b['messages']:6}  {b['path']}" for b in listed]
        verb = "would learn" if dry_run else "learned"
        lines.append(f"{verb} {counts['spam']} spam and {counts['ham']} ham from "
                     f"{len(listed)} mailbox(es)")
        if dry_run:
            lines.append("run it again without --dry-run to learn them")
        lines += [f"{name}: learned {t['changed']}, unchanged {t['unchanged']}"
                  for name, t in totals.items()]
        return "\n".join(lines)

    emit(data, as_json, text)


def _batches(items: Iterator[Item]) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _train_all(backends: Sequence[Classifier], raws: Sequence[bytes], spam: bool,
               forget: bool, totals: dict[str, dict[str, int]]) -> None:
    """Train every backend with one batch, adding to ``totals`` (one line and exit 1 when
    a backend is unavailable)."""
    for backend in backends:
        try:
            changed, unchanged = _train(backend, raws, spam, forget)
        except ClassifierUnavailable as err:
            fail(f"classifier {backend.name} unavailable: {err}")
        totals[backend.name]["changed"] += changed
        totals[backend.name]["unchanged"] += unchanged


def _train(backend: Classifier, raws: Sequence[bytes], spam: bool,
           forget: bool) -> tuple[int, int]:
    """Train a batch; a backend with ``learn_many``/``forget_many`` does it in bulk and
    says how many changed, others learn one by one (every message counts as changed)."""
    bulk: Callable[..., Any] | None = getattr(backend, "forget_many" if forget
                                              else "learn_many", None)
    if bulk is not None:
        result = bulk(raws, spam)
        return result.changed, result.unchanged
    one = backend.forget if forget else backend.learn
    for raw in raws:
        one(raw, spam)
    return len(raws), 0


@click.group("classifier", help="The spam classifiers.")
def classifier() -> None:
    pass


@served
@classifier.command("stats")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def stats(as_json: bool) -> None:
    """What the configured classifiers have learned."""
    require_root()
    app = get_app()
    data = collect_stats(app)

    def text() -> str:
        lines = [f"outgoing: {data['outgoing_backend']}",
                 f"incoming: {data['incoming_backend']}"]
        for name, values in data["backends"].items():
            lines.append(f"{name}:")
            lines.extend(f"  {k}: {v}" for k, v in values.items())
        return "\n".join(lines)

    emit(data, as_json, text)


def collect_stats(app: App) -> dict[str, Any]:
    backends: dict[str, Any] = {}
    for backend in configured_backends(app):
        try:
            backends[backend.name] = dict(backend.stats())
        except ClassifierUnavailable as err:
            backends[backend.name] = {"error": str(err)}
    return {"outgoing_backend": app.config.get("classify.outgoing_backend"),
            "incoming_backend": app.config.get("classify.incoming_backend"),
            "backends": backends}
