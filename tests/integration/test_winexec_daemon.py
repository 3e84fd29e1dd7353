"""winexec through the real daemon: held with reason ``winexec`` by the real quarantine,
delivered once ``ie-cli filter-settings --winexec-allow-outgoing yes`` is set (no
restart), incoming executables refused, and hostile mail answered while the daemon keeps
serving."""

from __future__ import annotations

import json
import smtplib
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.fixtures import winexec_messages as m
from tests.fixtures.paths import IE_CLI

SETTINGS_CACHE_SECONDS = 2.0  # ie_core.settings.RuntimeSettings' default ttl
ONLY_WINEXEC = {"pipeline.outgoing": ["winexec"], "pipeline.incoming": ["winexec"]}
EXE_MAIL = m.mail(("invoice.pdf", m.pe_file(), "application/pdf"))


def config_file(tmp_path: Path, db_url: str) -> Path:
    path = tmp_path / "winexec.toml"
    path.write_text(f'[ie]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{db_url}"\n')
    return path


def cli(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([IE_CLI, "--config", str(config), *args], capture_output=True,
                          text=True, timeout=60)


def send(port: int, raw: bytes, rcpt: str = "bob@example.org") -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
        s.ehlo()
        s.mail("alice@example.com")
        s.rcpt(rcpt)
        code, reply = s.data(raw)
    return code, reply.decode()


def test_executable_is_held_then_delivered_once_allowed(run_daemon, sink, db_url, tmp_path,
                                                        clock):
    clock.set(datetime.now(UTC))  # ie-cli reads the system's clock (emails list: last 30 days)
    config = config_file(tmp_path, db_url)
    d = run_daemon(db_url=db_url, config=config, **ONLY_WINEXEC)

    code, reply = send(d.outgoing_port, EXE_MAIL)
    assert code == 250 and "held as " in reply, reply
    held_id = reply.rsplit("held as ", 1)[1].strip()
    listed = cli(config, "emails", "list", "--reason", "winexec", "--json")
    assert listed.returncode == 0, listed.stderr
    [item] = json.loads(listed.stdout)["items"]
    assert (item["email_id"], item["reasons"]) == (held_id, ["winexec"])
    assert sink.messages == []

    changed = cli(config, "filter-settings", "--winexec-allow-outgoing", "yes", "--json")
    assert changed.returncode == 0, changed.stderr
    assert json.loads(changed.stdout)["winexec.allow_outgoing"] is True
    time.sleep(SETTINGS_CACHE_SECONDS + 0.3)

    code, reply = send(d.outgoing_port, EXE_MAIL)
    assert code == 250 and "delivered" in reply, reply
    [got] = sink.wait_for(1)
    assert got.data.endswith(EXE_MAIL)
    assert b"X-IE-Filter-Action: deliver" in got.data


def test_incoming_executable_is_refused_and_the_next_message_delivered(run_daemon, sink):
    d = run_daemon(**ONLY_WINEXEC)
    code, reply = send(d.incoming_port, m.mail(("tool.gz", m.gzip_of(m.pe_file(), "tool"),
                                                "application/gzip")))
    assert code == 550, reply
    assert send(d.incoming_port, m.plain_mail())[0] == 250
    assert len(sink.wait_for(1)) == 1


EXE_PART = m.attachment_part("setup.exe", m.pe_file())

# name: (message, what the filter does with it).  Mail that a scan bound stops is held
# (winexec.scan_limits = hold): an executable hidden past the bounds must not get out.
HOSTILE = {
    "zip_bomb": (lambda: m.mail(("bomb.zip", m.zeros_zip_bomb(), "application/zip")),
                 "delivered"),
    "nested_zip_bomb": (lambda: m.mail(("deep.zip", m.nested_zip(40), "application/zip")),
                        "held"),
    "corrupt_zip": (lambda: m.mail(("files.zip", m.corrupt_zip(), "application/zip")),
                    "delivered"),
    "attachment_20mb": (lambda: m.big_attachment_mail(20 * 2**20), "delivered"),
    "mime_parts_1000": (lambda: m.many_parts(1000), "delivered"),
    "nested_multipart_300": (lambda: m.deeply_nested_multipart(300), "held"),
    "nested_multipart_3000": (lambda: m.deeply_nested_multipart(3000), "held"),
    "undecodable_charsets": (m.undecodable_charsets, "delivered"),
    "broken_base64": (lambda: m.broken_base64(m.TEXT_FILE), "delivered"),
    "octet_stream_text": (lambda: m.mail(("notes.txt", m.TEXT_FILE,
                                          "application/octet-stream")), "delivered"),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_mail_is_answered_and_the_daemon_keeps_serving(run_daemon, sink, name):
    d = run_daemon(**ONLY_WINEXEC)
    build, expected = HOSTILE[name]
    raw = build()
    started = time.monotonic()
    code, reply = send(d.outgoing_port, raw)
    assert code == 250 and expected in reply, reply
    assert time.monotonic() - started < 20
    code, reply = send(d.outgoing_port, EXE_MAIL)
    assert code == 250 and "held as " in reply, reply
    if expected == "delivered":
        [got] = sink.wait_for(1)
        assert got.data.endswith(raw)
    else:
        assert sink.messages == []


HIDDEN_PAST_A_BOUND = {
    "2000 filler parts first": lambda: m.many_parts(2000, EXE_PART),
    "200 nested multiparts": lambda: m.deeply_nested_multipart(200, EXE_PART),
    "20 nested zips": lambda: m.mail(("deep.zip", m.nested_zip(20), "application/zip")),
    "zip declaring 3001 entries": lambda: m.mail((
        "many.zip", m.zip_of({**{f"f{i}.txt": b"x" for i in range(3000)},
                              "setup.exe": m.pe_file()}), "application/zip")),
}


@pytest.mark.parametrize("name", sorted(HIDDEN_PAST_A_BOUND))
def test_an_executable_hidden_past_a_scan_bound_is_held(run_daemon, sink, tmp_path, name):
    d = run_daemon(**ONLY_WINEXEC)
    code, reply = send(d.outgoing_port, HIDDEN_PAST_A_BOUND[name]())
    assert code == 250 and "held as " in reply, reply
    assert sink.messages == []
