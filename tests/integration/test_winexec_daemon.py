"""winexec through the real daemon: held with reason ``winexec`` by the real quarantine,
delivered once ``ie-cli filter-settings --winexec-allow-outgoing yes`` is set (no
restart), incoming executables refused, and hostile mail answered while the daemon keeps
serving."""

from __future__ import annotations

import json
import smtplib
import subprocess
import time
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


def test_executable_is_held_then_delivered_once_allowed(run_daemon, sink, db_url, tmp_path):
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


HOSTILE = {
    "zip_bomb": lambda: m.mail(("bomb.zip", m.zeros_zip_bomb(), "application/zip")),
    "nested_zip_bomb": lambda: m.mail(("deep.zip", m.nested_zip(40), "application/zip")),
    "corrupt_zip": lambda: m.mail(("files.zip", m.corrupt_zip(), "application/zip")),
    "attachment_20mb": lambda: m.big_attachment_mail(20 * 2**20),
    "mime_parts_1000": lambda: m.many_parts(1000),
    "nested_multipart_300": lambda: m.deeply_nested_multipart(300),
    "nested_multipart_3000": lambda: m.deeply_nested_multipart(3000),
    "undecodable_charsets": m.undecodable_charsets,
    "broken_base64": lambda: m.broken_base64(m.TEXT_FILE),
    "octet_stream_text": lambda: m.mail(("notes.txt", m.TEXT_FILE, "application/octet-stream")),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_mail_is_delivered_and_the_daemon_keeps_serving(run_daemon, sink, name):
    d = run_daemon(**ONLY_WINEXEC)
    raw = HOSTILE[name]()
    started = time.monotonic()
    code, reply = send(d.outgoing_port, raw)
    assert code == 250 and "delivered" in reply, reply
    assert time.monotonic() - started < 20
    code, reply = send(d.outgoing_port, EXE_MAIL)
    assert code == 250 and "held as " in reply, reply
    [got] = sink.wait_for(1)
    assert got.data.endswith(raw)
