"""ie-filterd's /metrics and /healthz on a real daemon: after a known mix of messages each
counter has its exact value, with one worker and with two (the figures are the daemon's,
not one worker's); quarantine actions done by ie-cli in another process are counted
from the outbox; /healthz names what is down."""

from __future__ import annotations

import json
import os
import signal
import smtplib
import socket
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
    return [item["email_id"] for item in json.loads(cli(config, "emails", "list",
                                                        "--json"))["items"]]


def cli(config: str, *args: str) -> str:
    out = subprocess.run([str(BIN / "ie-cli"), "--config", config, *args],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("workers", [1, 2])
def test_counters_after_a_known_mix(tmp_path, sink, workers):
    port, foreign = free_port(), tmp_path / "foreign-multiproc"
    foreign.mkdir()
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}",
                                 "filter.workers": workers, "filter.metrics_listen":
                                 f"127.0.0.1:{port}", "events.poll_interval": 0.2})
    d.start(env={"PROMETHEUS_MULTIPROC_DIR": str(foreign)})  # not ie's: ignored
    try:
        wait_until(lambda: healthz(port)[0] == 200)
        sessions = [smtplib.SMTP("127.0.0.1", d.outgoing_port, timeout=20) for _ in range(2)]
        wait_until(lambda: value(scrape(port), "ie_smtp_sessions", listener="outgoing") == 2)
        for session in sessions:
            session.quit()
        send(d.outgoing_port, plain_mail(), 3)                              # delivered
        send(d.outgoing_port, mail(("setup.exe", pe_file(), "application/octet-stream")), 2)
        send(d.outgoing_port, b"Subject: offer\r\n\r\n" + GTUBE + b"\r\n", 1)  # spam
        sink.handler.mode = "tempfail"                       # the MTA behind ie says 451
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            send(d.outgoing_port, plain_mail(), 1)
        assert deferred.value.smtp_code == 451
        sink.handler.mode = "accept"
        assert len(sink.wait_for(3)) == 3
        wait_until(lambda: value(scrape(port), "ie_events_total", kind="held") == 3)
        m = scrape(port)
        out = {"direction": "outgoing"}
        assert value(m, "ie_messages_total", action="deliver", result="delivered", **out) == 3
        assert value(m, "ie_messages_total", action="deliver", result="tempfailed_downstream",
                     **out) == 1
        assert value(m, "ie_messages_total", action="quarantine", result="held", **out) == 3
        assert value(m, "ie_message_reasons_total", reason="winexec", **out) == 2
        assert value(m, "ie_message_reasons_total", reason="spam", **out) == 1
        assert value(m, "ie_message_seconds_count", **out) == 7
        assert value(m, "ie_reinjection_replies_total", reply_class="2xx", **out) == 3
        assert value(m, "ie_reinjection_replies_total", reply_class="4xx", **out) == 1
        assert value(m, "ie_reinjection_seconds_count", **out) == 4
        assert value(m, "ie_stage_seconds_count", stage="winexec") == 7
        assert value(m, "ie_quarantine_messages", account="root") == 3
        assert value(m, "ie_quarantine_bytes_all") > 0
        assert value(m, "ie_smtp_sessions", listener="outgoing") == 0  # all closed again

        first, second, _ = held_ids(str(d.config))  # an admin acts in another process
        cli(str(d.config), "emails", "remove", "--ids", first)
        cli(str(d.config), "emails", "release", "--ids", second)
        cli(str(d.config), "accounts", "edit", "-a", "root", "--limit", "1")
        send(d.outgoing_port, mail(("setup.exe", pe_file(), "application/octet-stream")), 1)
        wait_until(lambda: value(scrape(port), "ie_events_total", kind="evicted") == 1)
        m = scrape(port)
        assert [value(m, "ie_events_total", kind=k) for k in
                ("held", "deleted", "released", "evicted")] == [4, 1, 1, 1]
        assert value(m, "ie_quarantine_messages", account="root") == 1
    finally:
        assert d.stop() == 0
    assert list(foreign.iterdir()) == []
    assert bool(list((tmp_path / "ie-data" / "metrics").glob("*.db"))) == (workers > 1)


def test_the_figures_outlive_a_reload_and_a_worker_that_dies(tmp_path, sink):
    port = free_port()
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{sink.port}",
                                 "filter.workers": 2, "filter.metrics_listen":
                                 f"127.0.0.1:{port}"}).start()
    delivered = {"direction": "outgoing", "action": "deliver", "result": "delivered"}
    try:
        send(d.outgoing_port, plain_mail(), 4)
        assert value(scrape(port), "ie_messages_total", **delivered) == 4
        d.signal(signal.SIGHUP)  # the services process, which serves /metrics, restarts
        wait_until(lambda: "event=services_restarting" in d.log())
        wait_until(lambda: healthz(port)[0] == 200)
        worker = int(next(line.split("pid=")[1].split()[0] for line in d.log().splitlines()
                          if "event=listening direction=outgoing" in line))
        os.kill(worker, signal.SIGKILL)
        wait_until(lambda: "event=worker_died" in d.log())
        send(d.outgoing_port, plain_mail(), 2)
        m = scrape(port)
        assert value(m, "ie_messages_total", **delivered) == 6
        assert value(m, "ie_smtp_sessions", listener="outgoing") == 0
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


def test_a_classifier_that_stops_answering_counts_as_a_timeout(tmp_path, sink):
    port, silent = free_port(), socket.create_server(("127.0.0.1", 0))  # never answers
    d = DaemonProcess(tmp_path, {
        "filter.reinject": f"127.0.0.1:{sink.port}", "filter.metrics_listen":
        f"127.0.0.1:{port}", "classify.outgoing_backend": "spamassassin",
        "spamassassin.address": f"127.0.0.1:{silent.getsockname()[1]}",
        "spamassassin.timeout": 0.5, "classify.outgoing_fallback": "pass"}).start()
    try:
        send(d.outgoing_port, plain_mail(), 2)
        m = scrape(port)
    finally:
        d.stop()
        silent.close()
    assert value(m, "ie_classifier_errors_total", backend="spamassassin", kind="timeout") == 2
    assert value(m, "ie_classifier_errors_total", backend="spamassassin", kind="error") == 0
    assert value(m, "ie_messages_total", direction="outgoing", action="deliver",
                 result="delivered") == 2  # the fallback passed them


@pytest.mark.parametrize("workers", [1, 2])
def test_a_metrics_address_in_use_stops_ie_filterd_with_one_line(tmp_path, workers):
    taken = socket.create_server(("127.0.0.1", 0))
    address = f"127.0.0.1:{taken.getsockname()[1]}"
    d = DaemonProcess(tmp_path, {"filter.metrics_listen": address, "filter.workers": workers})
    try:
        out = subprocess.run([str(BIN / "ie-filterd"), "--config", str(d.config), "--init-db"],
                             capture_output=True, text=True, timeout=60)
    finally:
        taken.close()
    assert out.returncode == 2
    assert [line for line in out.stderr.splitlines() if "Traceback" in line or
            line.startswith("ie-filterd:")] == [
        f"ie-filterd: cannot listen: filter.metrics_listen {address}: Address "
        "already in use (another HOST:PORT, or empty to turn the endpoint off)"]


def test_nodes_sharing_a_database_each_count_every_event(tmp_path, sink):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    nodes, ports = [], [free_port(), free_port()]
    for name, port in zip(("a", "b"), ports, strict=True):
        nodes.append(DaemonProcess(tmp_path, {
            "filter.reinject": f"127.0.0.1:{sink.port}", "ie.database_url": url,
            "ie.hostname": f"node-{name}.example.net", "events.poll_interval": 0.2,
            "filter.metrics_listen": f"127.0.0.1:{port}"}, name=name).start())
    try:
        send(nodes[0].outgoing_port, mail(("setup.exe", pe_file(),
                                           "application/octet-stream")), 1)
        [held] = held_ids(str(nodes[0].config))
        cli(str(nodes[1].config), "emails", "remove", "--ids", held)
        for port in ports:
            wait_until(lambda p=port: value(scrape(p), "ie_events_total", kind="deleted") == 1)
        time.sleep(1.0)  # several more polls: nothing is counted twice
        assert [[value(scrape(p), "ie_events_total", kind=k) for k in ("held", "deleted")]
                for p in ports] == [[1, 1], [1, 1]]
    finally:
        for node in nodes:
            node.stop()


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


def status_item(config: str, name: str) -> dict[str, object]:
    out = subprocess.run([str(BIN / "ie-config"), "--config", config, "status", "--json"],
                         capture_output=True, text=True, timeout=60)
    return next(i for i in json.loads(out.stdout)["items"] if i["name"] == name)


def test_healthz_and_the_counters_when_the_reinjection_mta_hangs_or_is_down(tmp_path):
    port, mta = free_port(), Sink(hang_seconds=3.0).start()
    d = DaemonProcess(tmp_path, {"filter.reinject": f"127.0.0.1:{mta.port}",
                                 "filter.reinject_timeout": 1.0,
                                 "filter.metrics_listen": f"127.0.0.1:{port}"}).start()
    try:
        wait_until(lambda: healthz(port)[0] == 200)
        mta.handler.mode = "hang"  # answers RCPT, then nothing after DATA
        with pytest.raises(smtplib.SMTPDataError) as deferred:
            send(d.outgoing_port, plain_mail(), 1)
        assert deferred.value.smtp_code == 451
        status, body = healthz(port)
        assert "ok database" in body and "ok listener outgoing" in body
        assert status_item(str(d.config), "monitoring endpoint")["ok"] is True
        mta.stop()
        status, body = healthz(port)
        assert status == 503
        assert [line.split(": ")[0] for line in body.splitlines() if line.startswith("FAIL")] \
            == [f"FAIL reinjection 127.0.0.1:{mta.port}"]
        item = status_item(str(d.config), "monitoring endpoint")
        assert item["ok"] is False and "answers 503: reinjection 127.0.0.1" in item["detail"]

        with pytest.raises(smtplib.SMTPRecipientsRefused):  # 451 at RCPT: no MTA to ask
            send(d.outgoing_port, plain_mail(), 1)
        m, out = scrape(port), {"direction": "outgoing"}
        assert value(m, "ie_reinjection_errors_total", kind="timeout", **out) == 1
        assert value(m, "ie_reinjection_errors_total", kind="unreachable", **out) == 1
        assert value(m, "ie_reinjection_replies_total", reply_class="4xx", **out) == 0
        assert value(m, "ie_messages_total", action="deliver", result="tempfailed_downstream",
                     **out) == 1
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
