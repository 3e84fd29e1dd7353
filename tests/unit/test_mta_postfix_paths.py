"""What ie-config enable writes so that every way of sending through Postfix reaches the
outgoing listener (the MTA's programs stubbed; see tests/integration/test_mta_postfix.py
for the real Postfix)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from ie_core import App
from ie_core.app import create_app
from ie_plugins.mta import managed, postfix
from ie_plugins.mta.wiring import Conflict, restored

SMTP = "smtp      inet  n       -       y       -       -       smtpd\n"
PICKUP = "pickup    unix  n       -       y       60      1       pickup\n"


@pytest.fixture
def wiring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[postfix.PostfixWiring]:
    """Postfix's configuration in tmp_path/postfix; postconf answers ``mynetworks`` from
    ``wiring.mynetworks`` and nothing else."""
    (tmp_path / "postfix").mkdir()
    (tmp_path / "postfix" / "master.cf").write_text(SMTP + PICKUP)
    app: App = create_app(None, overrides={
        "ie.data_dir": str(tmp_path / "data"), "mta.postfix_dir": str(tmp_path / "postfix"),
        "mta.postfix_outgoing_services": ["pickup/unix"],
        "quarantine.cli_socket": str(tmp_path / "cli.sock")})
    w = postfix.PostfixWiring(app)
    w.mynetworks = "127.0.0.0/8"  # type: ignore[attr-defined]

    def run(args: Sequence[str], timeout: float = 60.0) -> tuple[int, str]:
        return 0, (w.mynetworks if args[-1] == "mynetworks" else "")  # type: ignore[attr-defined]

    monkeypatch.setattr(postfix, "run", run)
    yield w
    app.close()


def test_mynetworks_becomes_a_cidr_table_that_filters_as_outgoing_in_the_same_order(
        wiring: postfix.PostfixWiring) -> None:
    table = wiring.clients_table("127.0.0.0/8 !127.0.0.5, [::ffff:127.0.0.0]/104 "
                                 "[::1]/128 10.1.2.3/24 192.0.2.7")
    out = "FILTER ie_filter:[127.0.0.1]:10025"
    assert managed.strip(table) == ""  # all ie's: disable removes the file
    assert table.splitlines()[2:-1] == [
        f"127.0.0.0/8 {out}", "127.0.0.5/32 DUNNO", f"::ffff:7f00:0/104 {out}",
        f"::1/128 {out}", f"10.1.2.0/24 {out}", f"192.0.2.7/32 {out}"]


@pytest.mark.parametrize("item", ["hash:/etc/postfix/network_table", "/etc/postfix/nets",
                                  "mail.example.com", "127.0.0.0/33"])
def test_a_mynetworks_entry_ie_cannot_mirror_is_refused(
        wiring: postfix.PostfixWiring, item: str) -> None:
    wiring.mynetworks = f"127.0.0.0/8 {item}"  # type: ignore[attr-defined]
    with pytest.raises(Conflict, match=f"mynetworks lists '{item}': ie can send only"):
        wiring.plan()


def test_the_smtp_service_sends_sasl_and_mynetworks_clients_to_the_outgoing_listener(
        wiring: postfix.PostfixWiring) -> None:
    changes = wiring.plan()
    assert changes[wiring.clients].splitlines()[2] == \
        "127.0.0.0/8 FILTER ie_filter:[127.0.0.1]:10025"
    assert ("-o { smtpd_end_of_data_restrictions = check_sasl_access static:{FILTER "
            "ie_filter:[127.0.0.1]:10025}, check_client_access "
            f"cidr:{wiring.clients} }}") in changes[wiring.master]
    for path, text in changes.items():
        path.write_text(text)
    assert wiring.plan() == {}  # enabled: nothing to change
    wiring.mynetworks = "127.0.0.0/8 10.0.0.0/8"  # type: ignore[attr-defined]
    assert list(wiring.plan()) == [wiring.clients]  # mynetworks changed: the table follows
    assert restored(wiring.extra_files() + wiring.wired_files()) == {
        wiring.clients: None, wiring.master: SMTP + PICKUP}  # disable removes the table


def test_a_table_of_the_same_name_that_ie_did_not_write_is_refused(
        wiring: postfix.PostfixWiring) -> None:
    wiring.clients.write_text("10.0.0.0/8 OK\n")
    with pytest.raises(Conflict, match="exists and was not written by ie-config enable"):
        wiring.plan()


@pytest.mark.parametrize("line", [
    "2525      inet  n       -       y       -       -       smtpd\n",
    "smtpd     pass  -       -       y       -       -       smtpd\n",  # behind postscreen
    "628       inet  n       -       y       -       -       qmqpd\n"])
def test_a_service_that_receives_mail_but_is_not_wired_is_refused(
        wiring: postfix.PostfixWiring, line: str) -> None:
    wiring.master.write_text(SMTP + PICKUP + line)
    key = "/".join(line.split()[:2])
    with pytest.raises(Conflict, match=f"master.cf service {key} runs .* its mail would "
                                       "skip ie"):
        wiring.plan()
