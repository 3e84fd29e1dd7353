"""ie-filterd's /metrics and /healthz on a real daemon: after a known mix of messages each
counter has its exact value, with one worker and with two (the figures are the daemon's,
not one worker's); quarantine actions done by ie-cli in another process are counted
from the outbox; /healthz names what is down."""

from __future__ import annotations

import json
import smtplib
import subprocess
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine, text

from tests.conftest import PG_ADMIN_URL
from tests.fixtures.daemon import BIN, DaemonProcess
from tests.fixtures.sink import Sink, free_port
from tests.fixtures.winexec_messages import mail, pe_file, plain_mail

GTUBE = b"XJS*C4JDBQADN1.NSBN3*2IDNEN*GTUBE-STANDARD-ANTI-UBE-TEST-EMAIL*C.34X"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(port: int) -> Samples:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        body = resp.read().decode()
    found: Samples = {}
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def healthz(port: int) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=20) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode()
    except urllib.error.URLError as err:  # not listening yet
        return 0, str(err)


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("timed out")
        time.sleep(0.1)


def send(port: int, body: bytes, n: int) -> None:
    for i in range(n):
        with smtplib.SMTP("127.0.0.1", port, timeout=20) as s:
            s.sendmail("bob@example.com", [f"r{i}@example.org"], body)


def held_ids(config: str) -> list[str]:
    out = subprocess.run([str(BIN / "ie-cli"), "--config", config, "emails", "list", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return [item["email_id"] for item in json.loads(out.stdout)["items"]]


@pytest.mark.parametrize("workers", [1, 2])
def test_counters_after_a_known_mix(tmp_path, sink, workers):
    port = free_port()
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}",
                                 "filter.workers": workers, "filter.metrics_listen":
                                 f"127.0.0.1:{port}", "events.poll_interval": 0.2}).start()
    try:
        wait_until(lambda: healthz(port)[0] == 200)
        send(d.outgoing_port, plain_mail(), 3)                              # delivered
        send(d.outgoing_port, mail(("setup.exe", pe_file(), "application/octet-stream")), 2)
        send(d.outgoing_port, b"Subject: offer\r\n\r\n" + GTUBE + b"\r\n", 1)  # spam
        assert len(sink.wait_for(3)) == 3
        wait_until(lambda: value(scrape(port), "ie_events_total", kind="held") == 3)
        m = scrape(port)
        out = {"direction": "outgoing"}
        assert value(m, "ie_messages_total", action="deliver", result="delivered", **out) == 3
        assert value(m, "ie_messages_total", action="quarantine", result="held", **out) == 3
        assert value(m, "ie_message_reasons_total", reason="winexec", **out) == 2
        assert value(m, "ie_message_reasons_total", reason="spam", **out) == 1
        assert value(m, "ie_message_seconds_count", **out) == 6
        assert value(m, "ie_reinjection_replies_total", reply_class="2xx", **out) == 3
        assert value(m, "ie_reinjection_seconds_count", **out) == 3
        assert value(m, "ie_stage_seconds_count", stage="winexec") == 6
        assert value(m, "ie_quarantine_messages", account="root") == 3
        assert value(m, "ie_quarantine_bytes_all") > 0
        assert value(m, "ie_smtp_sessions", listener="outgoing") == 0  # all closed again

        first = held_ids(str(d.config))[0]  # an admin acts in another process
        out_cli = subprocess.run([str(BIN / "ie-cli"), "--config", str(d.config), "emails",
                                  "remove", "--ids", first], capture_output=True, text=True,
                                 timeout=60)
        assert out_cli.returncode == 0, out_cli.stderr
        wait_until(lambda: value(scrape(port), "ie_events_total", kind="deleted") == 1)
        assert value(scrape(port), "ie_quarantine_messages", account="root") == 2
    finally:
        assert d.stop() == 0


def test_classifier_errors_and_send_limit_hits_are_counted(tmp_path, sink, make_app):
    port, dead = free_port(), free_port()
    d = DaemonProcess(tmp_path, {
        "filter.reinject": f"127.0.0.1:{sink.port}", "filter.metrics_listen":
        f"127.0.0.1:{port}", "classify.outgoing_backend": "spamassassin",
        "spamassassin.address": f"127.0.0.1:{dead}", "classify.outgoing_fallback": "pass"})
    d.start()
    try:
        subprocess.run([str(BIN / "ie-cli"), "--config", str(d.config), "am",
                        "server-settings", "set", "--sender-email", "2"],
                       check=True, capture_output=True, timeout=60)
        send(d.outgoing_port, plain_mail(), 3)
        m = scrape(port)
        assert value(m, "ie_classifier_errors_total", backend="spamassassin", kind="error") == 3
        assert value(m, "ie_send_limit_hits_total", so_type="sender_email") == 1
        assert value(m, "ie_message_reasons_total", direction="outgoing",
                     reason="ratelimit") == 1

        out = subprocess.run([str(BIN / "ie-cli"), "--config", str(d.config), "top", "--json",
                              "--interval", "0.5"], capture_output=True, text=True, timeout=60)
        assert out.returncode == 0, out.stderr
        view = json.loads(out.stdout)
        assert view["rates"] == {"messages_per_s": 0.0, "held_per_s": 0.0}  # all done
        assert view["top_senders"] == [{"sender": "bob@example.com", "account": "root",
                                        "messages": 3, "held": 1}]
        near = {(x["so_type"], x["name"]): (x["used"], x["limit"], x["share"])
                for x in view["nearest_limits"]}
        assert near == {("sender_email", "bob@example.com"): (2, 2, 1.0)}
    finally:
        d.stop()


def test_top_without_the_metrics_endpoint_still_shows_the_senders(tmp_path, sink):
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}"}).start()
    try:
        send(d.outgoing_port, plain_mail(), 2)
        out = subprocess.run([str(BIN / "ie-cli"), "--config", str(d.config), "top", "--once"],
                             capture_output=True, text=True, timeout=60)
    finally:
        d.stop()
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "rates unavailable (filter.metrics_listen is off)"
    assert any(line.split()[:4] == ["bob@example.com", "root", "2", "0"] for line in lines)


def test_healthz_names_the_reinjection_mta_when_it_is_down(tmp_path):
    port, mta = free_port(), Sink().start()
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{mta.port}",
                                 "filter.metrics_listen": f"127.0.0.1:{port}"}).start()
    try:
        wait_until(lambda: healthz(port)[0] == 200)
        status, body = healthz(port)
        assert "ok database" in body and "ok listener outgoing" in body
        mta.stop()
        status, body = healthz(port)
        assert status == 503
        assert [line.split(": ")[0] for line in body.splitlines() if line.startswith("FAIL")] \
            == [f"FAIL reinjection 127.0.0.1:{mta.port}"]
    finally:
        d.stop()


@pytest.mark.postgres
def test_healthz_names_the_database_when_it_is_gone(tmp_path, sink):
    name = f"ie_health_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    port = free_port()
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}?connect_timeout=3"
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}",
                                 "ie.database_url": url,
                                 "filter.metrics_listen": f"127.0.0.1:{port}"}).start()
    try:
        wait_until(lambda: healthz(port)[0] == 200)
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        status, body = healthz(port)
        assert status == 503
        assert [line.split(": ")[0] for line in body.splitlines() if line.startswith("FAIL")] \
            == ["FAIL database"]
    finally:
        d.stop()
        admin.dispose()
