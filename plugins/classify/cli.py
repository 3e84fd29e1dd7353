"""``ie-cli learn`` and ``ie-cli classifier stats``."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import click

from ie_core import App
from ie_core.classifier import Classifier, ClassifierUnavailable
from ie_core.commands import echo_err, emit, fail, get_app, require_root
from ie_plugins.classify.sources import Item, read_sources
from ie_plugins.classify.stage import configured_backends

BATCH = 500  # messages per training transaction (backends that train in bulk)


@click.command("learn")
@click.argument("label", type=click.Choice(["spam", "ham"]))
@click.argument("sources", nargs=-1)
@click.option("--forget", is_flag=True, help="undo an earlier learn of these messages")
@click.option("--json", "as_json", is_flag=True, help="print JSON")
def learn(label: str, sources: tuple[str, ...], forget: bool, as_json: bool) -> None:
    """Train the configured classifiers with messages (files, Maildirs, mbox files, -)."""
    require_root()
    app = get_app()
    spam = label == "spam"
    backends = configured_backends(app)
    totals = {b.name: {"changed": 0, "unchanged": 0} for b in backends}
    read = failed = 0
    for batch in _batches(read_sources(sources)):
        good = [item.raw for item in batch if item.raw is not None]
        for item in batch:
            if item.raw is None:
                failed += 1
                echo_err(f"ie-cli: {item.where}: {item.error}")
        read += len(good)
        for backend in backends:
            try:
                changed, unchanged = _train(backend, good, spam, forget)
            except ClassifierUnavailable as err:
                fail(f"classifier {backend.name} unavailable: {err}")
            totals[backend.name]["changed"] += changed
            totals[backend.name]["unchanged"] += unchanged
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


def _batches(items: Iterator[Item]) -> Iterator[list[Item]]:
    batch: list[Item] = []
    for item in items:
        batch.append(item)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


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
