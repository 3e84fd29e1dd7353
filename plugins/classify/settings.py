"""The ``classify`` plugin's configuration keys and run-time settings (with their defaults).

Scores are points on the SpamAssassin/rspamd scale.  Outgoing mail is held only when it is
clearly spam (a false positive stops a customer's mail), so its threshold is well above
SpamAssassin's usual 5; incoming mail is only filed into Junk, so 5 is used there.
"""

from __future__ import annotations

from ie_core import ConfigKey, Direction
from ie_core.runtime import RuntimeSetting

FALLBACK_TEMPFAIL = "tempfail"
FALLBACK_PASS = "pass"
FALLBACKS = (FALLBACK_TEMPFAIL, FALLBACK_PASS)

CONFIG_KEYS = (
    ConfigKey("classify", "outgoing_backend", str, "builtin", "Classifier backend for "
              "outgoing mail (builtin, or a backend plugin's name such as rspamd)."),
    ConfigKey("classify", "incoming_backend", str, "builtin", "Classifier backend for "
              "incoming mail."),
    ConfigKey("classify", "learn_mailboxes", list,
              ["/home/*/Maildir", "/home/*/mail/*/*", "/var/mail/*"],
              "Where ie-cli learn --from-mailboxes looks for mailboxes (globs: Maildirs, "
              "mbox folders, mbox spool files)."),
    ConfigKey("classify", "outgoing_fallback", str, FALLBACK_TEMPFAIL, "When the outgoing "
              "backend is down or times out: tempfail (451, the MTA retries) or pass."),
    ConfigKey("classify", "incoming_fallback", str, FALLBACK_PASS, "When the incoming "
              "backend is down or times out: pass (deliver unscored) or tempfail."),
)

THRESHOLDS = {
    Direction.OUTGOING: RuntimeSetting(
        "classify.outgoing_threshold", float, 10.0,
        "Hold outgoing mail whose spam score is at or above this many points."),
    Direction.INCOMING: RuntimeSetting(
        "classify.incoming_threshold", float, 5.0,
        "Mark incoming mail as junk at or above this many points."),
}
