"""The send window's counters (issue 14: a check must not sum the hour's rows) stay equal
to the sum they replace, through sends, sends taken back (forget, relabel), time passing
and pruning, on both databases."""

from __future__ import annotations

import random
from datetime import timedelta

from sqlalchemy import select

from ie_plugins.ratelimit import counter
from ie_plugins.ratelimit.autorelease import prune
from ie_plugins.ratelimit.models import QUARANTINED, SenderObject
from ie_plugins.ratelimit.objects import ObjectKey, ensure, lock, save

KEYS = [ObjectKey("account", "acme"), ObjectKey("sender_email", "a@acme.example"),
        ObjectKey("sender_email", "b@acme.example")]


def counters_and_sums(app) -> dict[str, tuple[tuple[int, int], tuple[int, int]]]:
    """Per object: (counters brought to now, the window's sum) ."""
    now = app.clock.now()
    with app.db.session() as s:
        ids = list(s.scalars(select(SenderObject.id)))
        rows = lock(s, ids)
        counter.refresh(s, rows.values(), now)
        save(s, rows.values())
        summed = counter.window_usage(s, ids, now)
        return {oid: ((r.window_messages, r.window_recipients),
                      (summed.get(oid, counter.Usage()).messages,
                       summed.get(oid, counter.Usage()).recipients))
                for oid, r in rows.items()}


def test_counters_equal_the_window_sum_through_everything(make_app, db_url):
    app = make_app(db_url=db_url)
    ids = ensure(app, KEYS)
    rng = random.Random(14)
    sent: list[str] = []
    for step in range(400):
        move = rng.random()
        if move < 0.55:
            chosen = [ids[KEYS[0]], ids[rng.choice(KEYS[1:])]]
            message = f"m{step}"
            with app.db.session() as s:
                rows, _, now = counter.lock_and_check(s, counter.server_settings(app),
                                                      chosen, set(), 1 + step % 3, app.clock)
                counter.add_records(s, message, rows, now, counter.SENT, 1 + step % 3, True)
                counter.count_sent(rows.values(), 1 + step % 3)
                save(s, rows.values())
            sent.append(message)
        elif move < 0.65 and sent:
            counter.forget(app, sent.pop(rng.randrange(len(sent))))  # did not leave
        elif move < 0.72 and sent:
            counter.relabel(app, sent.pop(rng.randrange(len(sent))), QUARANTINED)
        elif move < 0.75:
            prune(app, timedelta(0))
        else:
            app.clock.advance(minutes=rng.choice([1, 7, 23, 61]))
        if step % 10 == 0:
            for oid, (counted, summed) in counters_and_sums(app).items():
                assert counted == summed, (step, oid)
    assert any(c != (0, 0) for c, _ in counters_and_sums(app).values())


def test_a_database_from_before_the_counters_is_summed_once(make_app, db_url):
    """Rows written before the counters existed (window_at NULL) are summed at the first
    check, then counted."""
    app = make_app(db_url=db_url)
    ids = ensure(app, KEYS[:2])
    now = app.clock.now()
    with app.db.session() as s:
        counter.add_records(s, "old1", list(ids.values()), now, counter.SENT, 2, True)
        counter.add_records(s, "old2", list(ids.values()), now, counter.SENT, 3, True)
    assert {c for c, _ in counters_and_sums(app).values()} == {(2, 5)}
    app.clock.advance(minutes=61)
    assert {c for c, _ in counters_and_sums(app).values()} == {(0, 0)}


def test_pruning_keeps_what_a_counter_still_has_to_take_away(make_app, db_url):
    app = make_app(db_url=db_url)
    ids = list(ensure(app, KEYS[:1]).values())
    with app.db.session() as s:
        rows, _, now = counter.lock_and_check(s, counter.server_settings(app), ids, set(), 1,
                                              app.clock)
        counter.add_records(s, "m", rows, now, counter.SENT, 1, True)
        counter.count_sent(rows.values(), 1)
        save(s, rows.values())
    app.clock.advance(minutes=50)
    assert {c for c, _ in counters_and_sums(app).values()} == {(1, 1)}  # counted at +50
    app.clock.advance(minutes=20)  # the send left the window 10 minutes ago
    prune(app, timedelta(0))
    assert {(c, s) for c, s in counters_and_sums(app).values()} == {((0, 0), (0, 0))}
