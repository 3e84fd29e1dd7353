"""Score bands, greylisting and the sender blocklist end to end: real Postfix -> ie-filterd
-> Postfix -> Dovecot LMTP -> Sieve, on each database.

The scores come from the real ``classify`` stage with a test-only backend
(``tests/fixtures/score_plugin.py``) that reads the score from an ``X-Test-Score`` header:
one message is built for each band, whatever a trained classifier would make of its
words.  The daemon runs on the test's ManualClock, so the greylist delay passes by moving
the clock; ``postfix flush`` makes Postfix retry the deferred message at once.
"""

from __future__ import annotations

import re
import smtplib
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from ie_core import ManualClock
from ie_plugins.blocklist import store
from tests.fixtures import score_plugin
from tests.fixtures.postfix import postfix_command
from tests.integration.test_incoming_e2e import ALICE, Stack, incoming_stack

pytestmark = pytest.mark.mta


def scored(subject: str, score: float, sender: str = "someone@outside.test") -> bytes:
    return (f"From: Someone <{sender}>\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{subject.replace(' ', '.')}@outside.test>\r\n"
            f"X-Test-Score: {score}\r\n\r\nHello.\r\n").encode()


@pytest.fixture
def bands_stack(run_daemon: Callable[..., Any], tmp_path: Path, clock: ManualClock,
                db_url: str) -> Iterator[Stack]:
    clock.advance(seconds=(datetime.now(UTC) - clock.now()).total_seconds())
    with incoming_stack(run_daemon, tmp_path, db_url, [ALICE], ["example.test"],
                        sections=f'[classify]\nincoming_backend = "{score_plugin.NAME}"\n',
                        plugins=[("testscore", score_plugin)]) as st:
        yield st


def wait_log(stack: Stack, pattern: str, timeout: float = 15) -> str:
    """The first line of Postfix's log matching ``pattern``."""
    deadline = time.monotonic() + timeout
    while True:
        found = re.search(f"^.*{pattern}.*$", stack.postfix.log_text(), re.M)
        if found:
            return found.group(0)
        if time.monotonic() > deadline:
            raise AssertionError(f"no log line matches {pattern!r}:\n"
                                 f"{stack.postfix.log_text()[-3000:]}")
        time.sleep(0.1)


def test_four_bands_greylisting_and_a_blocked_sender(bands_stack: Stack,
                                                     clock: ManualClock) -> None:
    stack = bands_stack
    stack.config_cmd("enable-incoming")
    stack.cli("filter-settings", "--incoming-greylist-threshold", "10",
              "--incoming-reject-threshold", "20", "--incoming-greylist-delay", "300")
    stack.cli("blocklist", "sender", "add", "blocked.test")

    stack.send(scored("band deliver", 1), ALICE)
    stack.send(scored("band junk", 7), ALICE)
    stack.send(scored("band reject", 25), ALICE)
    stack.send(scored("band greylist", 12), ALICE)
    stack.send(scored("from blocked", 0, sender="x@Mail.Blocked.TEST"), ALICE)

    stack.wait(ALICE, "INBOX", "band deliver")
    stack.wait(ALICE, "Junk", "band junk")
    assert "status=bounced" in wait_log(stack, "550 5.7.1 Message refused as spam")
    assert "status=bounced" in wait_log(stack, "550 5.7.1 Sender blocked by policy")
    deferred = wait_log(stack, "451 4.7.1 Greylisted, please try again in 300 seconds")
    assert "status=deferred" in deferred
    queue_id = deferred.split(": ", 2)[1]
    assert "band greylist" not in stack.dovecot.subjects(ALICE, "Junk")

    # an early retry is greylisted again; one after the delay goes to Junk
    clock.advance(seconds=100)
    assert postfix_command(stack.postfix.conf, "flush").returncode == 0
    wait_log(stack, rf"{queue_id}: .*try again in 200 seconds")
    clock.advance(seconds=201)
    assert postfix_command(stack.postfix.conf, "flush").returncode == 0
    stack.wait(ALICE, "Junk", "band greylist")
    assert sorted(stack.dovecot.subjects(ALICE, "INBOX")) == ["band deliver"]
    assert sorted(stack.dovecot.subjects(ALICE, "Junk")) == ["band greylist", "band junk"]


def test_blocklists_through_the_daemon(run_daemon: Callable[..., Any], sink: Any,
                                       db_url: str) -> None:
    """Outgoing mail to a blocked recipient and incoming mail from a blocked sender (named
    only in a display name of the From field) get the blocklist's own 550 after DATA;
    nothing reaches the downstream."""
    daemon = run_daemon(db_url=db_url)
    store.add(daemon.app, "recipient", "", ["rival.test"], "")
    store.add(daemon.app, "sender", "", ["blocked.test"], "refuse")
    sent = [(daemon.outgoing_port, "me@example.test", "Boss@Mail.Rival.TEST",
             b"From: me@example.test\r\nSubject: to a rival\r\n\r\nhi\r\n",
             "Recipient blocked by policy: rival.test"),
            (daemon.incoming_port, "x@fine.test", ALICE,
             b'From: "boss@blocked.test" <x@fine.test>\r\nSubject: spoof\r\n\r\nhi\r\n',
             "Sender blocked by policy")]
    for port, mail_from, rcpt, raw, text in sent:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp, \
                pytest.raises(smtplib.SMTPDataError) as refused:
            smtp.sendmail(mail_from, [rcpt], raw)
        assert refused.value.smtp_code == 550
        assert refused.value.smtp_error.decode() == f"5.7.1 {text}"
    assert sink.messages == []
