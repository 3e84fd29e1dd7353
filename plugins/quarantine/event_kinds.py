"""The outbox events the quarantine emits (``ie_core.events.emit``); their names and
payloads are the contract that other plugins (the notifier) and ``ie_event`` observers
read.  Every payload names the ``account``."""

HELD = "held"
"""A message was held; payload: id, sender, recipients, subject, reasons, size."""
RELEASED = "released"
"""A held message left the quarantine; payload: id, actor."""
DELETED = "deleted"
"""A held message was deleted; payload: id, actor."""
EVICTED = "evicted"
"""The oldest held message made room for a new one (storage limit); payload: id."""
ACCOUNT_BLOCKED = "account_blocked"
"""An account was put in state block; payload: actor."""
