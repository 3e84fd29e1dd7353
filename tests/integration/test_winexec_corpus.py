"""No message of the labelled corpus (ham and spam, none carries a Windows program) is
flagged by the winexec stage, and none makes it raise."""

from __future__ import annotations

from ie_core import Direction, MessageContext
from tests.fixtures.paths import CORPUS, corpus_folder


def test_no_corpus_message_is_flagged(make_app):
    files = sorted([*corpus_folder("ham").glob("*.eml"), *corpus_folder("spam").glob("*.eml")])
    assert len(files) == 2250, f"corpus missing or incomplete at {CORPUS}"
    app = make_app()
    for direction in Direction:
        [stage] = [s for s in app.stages(direction) if s.name == "winexec"]
        findings = {}
        for path in files:
            ctx = MessageContext(direction=direction, raw=path.read_bytes(),
                                 mail_from="", rcpt_tos=["x@example.org"],
                                 received_at=app.clock.now())
            finding = stage.run(ctx)
            if finding is not None:
                findings[path.name] = finding.detail
        assert findings == {}, direction
