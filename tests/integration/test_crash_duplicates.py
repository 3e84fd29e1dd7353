"""Issue 13, hole 10, through real Postfix and a real crash: ie-filterd is killed (SIGKILL)
after the downstream accepted a message and its log row was written, before it answered
Postfix.  Postfix keeps the message and hands it over again to the restarted ie, which
answers 250 without sending it a second time."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures.daemon import wait_port
from tests.fixtures.mta import ie_config, message
from tests.fixtures.paths import REPO
from tests.integration.test_mta_postfix import new_stack

pytestmark = pytest.mark.mta


def test_a_message_delivered_just_before_a_crash_goes_out_once(tmp_path: Path) -> None:
    with new_stack(tmp_path) as st:
        done = ie_config(st.config, "enable", "--mta", "postfix")
        assert done.returncode == 0, done.stderr
        st.postfix.start()
        st.postfix.wait_listening(st.postfix.reinject_port)
        log = (tmp_path / "crashing.log").open("wb")
        crashing = subprocess.Popen(
            [sys.executable, "-m", "tests.fixtures.crashing_filterd", str(st.config)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_port(st.ie.outgoing_port)
            st.postfix.sendmail(message("once"), ["carol@example.org"])
            assert crashing.wait(30) == -9  # killed after the delivery, before the reply
        finally:
            if crashing.poll() is None:
                crashing.kill()
            log.close()
        assert len(st.internet.wait_for(1, timeout=20)) == 1
        st.ie.start(init_db=False)  # the real ie-filterd comes back
        deadline = time.monotonic() + 60
        while st.postfix.queue() and time.monotonic() < deadline:
            st.postfix.flush()
            time.sleep(1)
        assert st.postfix.queue() == []
        time.sleep(1)
        assert [m.rcpt_tos for m in st.internet.messages] == [["carol@example.org"]]
        assert "event=duplicate_suppressed" in st.ie.log()
