"""The built-in classifier on the real store (SQLite and PostgreSQL): learning, exact
forgetting, the unsure minimum, and scoring spam it has not seen."""

from __future__ import annotations

from functools import cache

import pytest
from sqlalchemy import func, select

from ie_core import create_app
from ie_core.classifier import ClassifierUnavailable
from ie_plugins.bayes.models import BayesMessage, BayesToken
from tests.fixtures.paths import corpus_folder
from tests.fixtures.sink import free_port

TRAIN = 120  # of each label: enough to pass the minimum (100), quick to learn


@cache
def corpus(label: str) -> tuple[bytes, ...]:
    """The labelled development corpus (see ``tests.fixtures.paths``); skips without it."""
    return tuple(p.read_bytes() for p in sorted(corpus_folder(label).glob("*.eml")))


def training_set() -> tuple[list[bytes], list[bytes]]:
    """Every 4th message up to TRAIN of each label; the others are never learned."""
    return list(corpus("ham")[::4][:TRAIN]), list(corpus("spam")[::4][:TRAIN])


def unseen_spam() -> list[bytes]:
    return [m for i, m in enumerate(corpus("spam")) if i % 4 == 1][:40]


def unseen_ham() -> list[bytes]:
    return [m for i, m in enumerate(corpus("ham")) if i % 4 == 1][:40]


def trained(app):
    clf = app.hooks.classifiers(app)["builtin"]
    ham, spam = training_set()
    clf.learn_many(ham, spam=False)
    clf.learn_many(spam, spam=True)
    return clf


def counts(app) -> tuple[int, int, int]:
    with app.db.session() as s:
        return (s.scalar(select(func.count()).select_from(BayesMessage)),
                s.scalar(select(func.count()).select_from(BayesToken)),
                s.scalar(select(func.coalesce(func.sum(BayesToken.spam_count), 0))))


def test_unsure_until_the_minimum_is_learned(make_app, db_url):
    app = make_app(db_url=db_url)
    clf = app.hooks.classifiers(app)["builtin"]
    spam = corpus("spam")
    clf.learn_many(corpus("ham")[:99], spam=False)
    clf.learn_many(spam[:150], spam=True)
    result = clf.classify(spam[0])
    assert (result.label, result.score) == ("unsure", 0.0)
    assert "needs 100" in result.detail
    clf.learn(corpus("ham")[99], spam=False)
    assert clf.classify(spam[0]).label == "spam"


def test_a_reload_applies_new_limits_to_the_same_classifier(make_app, tmp_path):
    app = make_app()
    clf = app.hooks.classifiers(app)["builtin"]
    assert clf.limits.min_ham == 100
    config = tmp_path / "reloaded.toml"
    config.write_text("[bayes]\nmin_ham = 5\nspam_cutoff = 0.9\n", encoding="utf-8")
    new = create_app(config, overrides={"ie.data_dir": str(tmp_path / "data")})
    app.reconfigure(new.config, new.hooks)  # what SIGHUP does
    again = app.hooks.classifiers(app)["builtin"]
    assert (again.limits.min_ham, again.limits.spam_cutoff) == (5, 0.9)
    new.close()


def test_learns_spam_it_has_not_seen_and_passes_ham(make_app, db_url):
    app = make_app(db_url=db_url)
    clf = trained(app)
    spam_results = [clf.classify(m) for m in unseen_spam()]
    ham_results = [clf.classify(m) for m in unseen_ham()]
    assert sum(r.label == "spam" for r in spam_results) >= 34  # of 40
    assert sum(r.label == "spam" for r in ham_results) == 0
    assert min(r.score for r in ham_results) < 0 < max(r.score for r in spam_results)
    assert clf.stats()["ready"] is True


def test_learning_twice_does_not_count_twice_and_forget_undoes_exactly(make_app, db_url):
    app = make_app(db_url=db_url)
    clf = app.hooks.classifiers(app)["builtin"]
    ham, spam = corpus("ham")[:30], corpus("spam")[:30]
    clf.learn_many(ham, spam=False)
    before = counts(app)
    first = clf.learn_many(spam, spam=True)
    after = counts(app)
    again = clf.learn_many(spam, spam=True)
    assert (first.changed, again.changed, again.unchanged) == (30, 0, 30)
    assert counts(app) == after
    assert clf.stats()["spam_messages"] == 30
    wrong = clf.forget_many(spam[:5], spam=False)  # not learned as ham: nothing to undo
    assert (wrong.changed, wrong.unchanged) == (0, 5)
    undone = clf.forget_many(spam, spam=True)
    assert undone.changed == 30
    assert counts(app) == before
    assert clf.stats()["spam_messages"] == 0


def test_relearning_with_the_other_label_moves_the_message(make_app, db_url):
    app = make_app(db_url=db_url)
    clf = app.hooks.classifiers(app)["builtin"]
    message = corpus("spam")[3]
    clf.learn(message, spam=True)
    clf.learn(message, spam=False)
    stats = clf.stats()
    assert (stats["ham_messages"], stats["spam_messages"]) == (1, 0)
    assert counts(app)[2] == 0  # no token keeps a spam count


def test_database_down_is_classifier_unavailable(tmp_path):
    (tmp_path / "ie.toml").touch()
    app = create_app(tmp_path / "ie.toml", overrides={
        "ie.database_url": f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/none"})
    clf = app.hooks.classifiers(app)["builtin"]
    try:
        with pytest.raises(ClassifierUnavailable):
            clf.classify(corpus("spam")[0])
    finally:
        app.close()


def test_a_learn_by_another_process_is_seen_by_the_next_classification(make_app, db_url,
                                                                      tmp_path):
    """Each process keeps its tokens' probabilities for the counts' revision: after a
    learn elsewhere it scores like a process that never kept anything."""
    app = make_app(db_url=db_url)
    clf = trained(app)
    message = unseen_spam()[0]
    first = clf.classify(message)
    again = clf.classify(message)
    assert (again.score, again.detail) == (first.score, first.detail)

    other = make_app(db_url=db_url, **{"ie.data_dir": str(tmp_path / "other")})
    other.hooks.classifiers(other)["builtin"].learn_many(unseen_spam()[1:30], spam=False)
    app.changes.refresh()
    after = clf.classify(message)
    cold = make_app(db_url=db_url, **{"ie.data_dir": str(tmp_path / "cold")})
    expected = cold.hooks.classifiers(cold)["builtin"].classify(message)
    assert (after.score, after.detail) == (expected.score, expected.detail)
    assert after.detail != first.detail
