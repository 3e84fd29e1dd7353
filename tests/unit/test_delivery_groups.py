"""How a message's recipients are split into delivered copies."""

from __future__ import annotations

from datetime import UTC, datetime

from ie_core.message import DeliveryGroup, MessageContext
from ie_core.verdict import Direction


def ctx(*rcpts: str, groups: list[DeliveryGroup] | None = None) -> MessageContext:
    c = MessageContext(Direction.INCOMING, b"Subject: x\r\n\r\n", "s@example.com",
                       list(rcpts), datetime(2026, 1, 1, tzinfo=UTC))
    c.groups = groups or []
    return c


def test_no_groups_is_one_plain_copy_for_everybody() -> None:
    [group] = ctx("a@x.test", "b@x.test").delivery_groups()
    assert (group.rcpt_tos, group.headers) == (["a@x.test", "b@x.test"], [])


def test_every_recipient_is_in_exactly_one_copy() -> None:
    groups = ctx("a@x.test", "b@x.test", "c@x.test", groups=[
        DeliveryGroup(["b@x.test", "stranger@x.test"], [("X-IE-Junk", "all")]),
        DeliveryGroup(["b@x.test"], [("X-Other", "1")]),
        DeliveryGroup([], [("X-Empty", "1")]),
    ]).delivery_groups()
    # a stranger is never added, b's second group and the empty one are dropped, and
    # the recipients nobody named get a plain copy
    assert [(g.rcpt_tos, g.headers) for g in groups] == [
        (["b@x.test"], [("X-IE-Junk", "all")]), (["a@x.test", "c@x.test"], [])]
