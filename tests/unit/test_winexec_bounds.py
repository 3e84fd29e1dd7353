"""A scan bound is its own outcome: an executable hidden past one (behind 2,000 filler
parts, 200 nested multiparts, 20 nested zips, a zip declaring 3,001 entries) is held by
default, apart from the archives that cannot be opened (allowed by default); the run-time
setting ``winexec.scan_limits`` lets such mail through when an admin chooses."""

from __future__ import annotations

import pytest

from ie_core import Action, Direction, MessageContext
from tests.fixtures import winexec_messages as m

EXE_PART = m.attachment_part("setup.exe", m.pe_file())
HIDDEN = {
    "filler parts": (lambda: m.many_parts(2000, EXE_PART),
                     "message: not inspected, more than 2000 parts and archive members"),
    "nested multiparts": (lambda: m.deeply_nested_multipart(200, EXE_PART),
                          "MIME parts nested deeper than 16"),
    "nested zips": (lambda: m.mail(("deep.zip", m.nested_zip(20), "application/zip")),
                    "archives nested deeper than 16"),
    "zip declaring 3001 entries": (
        lambda: m.mail(("many.zip", m.zip_of({**{f"f{i}.txt": b"x" for i in range(3000)},
                                              "setup.exe": m.pe_file()}), "application/zip")),
        "zip declares 3001 members"),
}


def run_stage(app, raw: bytes, direction: Direction = Direction.OUTGOING):
    [stage] = [s for s in app.stages(direction) if s.name == "winexec"]
    ctx = MessageContext(direction=direction, raw=raw, mail_from="alice@example.com",
                         rcpt_tos=["bob@example.org"], received_at=app.clock.now())
    return stage.run(ctx)


@pytest.mark.parametrize("name", sorted(HIDDEN))
def test_executable_past_a_bound_is_held_by_default(make_app, name):
    build, why = HIDDEN[name]
    finding = run_stage(make_app(), build())
    assert (finding.reason, finding.action) == ("winexec", Action.QUARANTINE)
    assert finding.detail.startswith("scan bound reached: ")
    assert why in finding.detail


def test_the_same_executable_within_the_bounds_is_found_by_content(make_app):
    finding = run_stage(make_app(), m.many_parts(100, EXE_PART))
    assert (finding.reason, finding.action) == ("winexec", Action.QUARANTINE)
    assert finding.detail == "setup.exe: file name ending in .exe"


def test_incoming_mail_past_a_bound_gets_the_incoming_action(make_app):
    finding = run_stage(make_app(), HIDDEN["nested zips"][0](), Direction.INCOMING)
    assert (finding.reason, finding.action) == ("winexec", Action.REJECT)


def test_scan_limits_allow_lets_it_through_and_is_read_per_message(make_app, db_url):
    app = make_app(db_url=db_url)
    raw = HIDDEN["filler parts"][0]()
    assert run_stage(app, raw).action is Action.QUARANTINE
    app.settings.set("winexec.scan_limits", "allow")
    finding = run_stage(app, raw)
    assert (finding.reason, finding.action) == (None, Action.DELIVER)
    assert "more than 2000 parts" in finding.detail


def test_an_archive_that_cannot_be_opened_is_not_a_bound(make_app):
    raw = m.mail(("secret.zip", m.encrypted_zip(["readme.txt"]), "application/zip"))
    finding = run_stage(make_app(), raw)
    assert (finding.reason, finding.action) == (None, Action.DELIVER)


def test_unopenable_hold_and_bounds_allow_are_independent(make_app):
    app = make_app()
    app.settings.set("winexec.unopenable_archives", "hold")
    app.settings.set("winexec.scan_limits", "allow")
    encrypted = m.mail(("secret.zip", m.encrypted_zip(["readme.txt"]), "application/zip"))
    assert run_stage(app, encrypted).action is Action.QUARANTINE
    assert run_stage(app, HIDDEN["nested zips"][0]()).action is Action.DELIVER
