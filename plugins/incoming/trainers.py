"""Who may train the classifier from Junk moves (NethServer's ``spamtrainers``).

``incoming.trainers`` lists IMAP user names (as Dovecot names them: ``alice`` or
``alice@example.com``) and ``%group`` entries (the members of a Unix group, its primary
members included), separated by commas or spaces.  Empty: everybody trains.  The user of
a report is the one Dovecot's IMAPSieve environment named (``imap.user``), carried in the
spool file's name by the ``ie-learn`` wrapper; never anything from the message.
"""

from __future__ import annotations

import grp
import logging
import pwd

from ie_core import App

log = logging.getLogger("ie.incoming")

USER_HEX_MAX = 200  # hex digits of the user name in a report's file name (100 bytes)


def entries(app: App) -> list[str]:
    text = app.config.get("incoming.trainers")
    return [e for e in text.replace(",", " ").split() if e]


def _group_members(name: str) -> set[str]:
    try:
        group = grp.getgrnam(name)
    except KeyError:
        log.warning("event=trainers_group_unknown group=%s", name[:64])
        return set()
    members = set(group.gr_mem)
    members.update(p.pw_name for p in pwd.getpwall() if p.pw_gid == group.gr_gid)
    return members


def may_train(app: App, user: str | None) -> bool:
    """May ``user`` (``None``: unknown) train?  Everybody may when no trainers are set."""
    listed = entries(app)
    if not listed:
        return True
    if not user:
        return False
    wanted = user.casefold()
    for entry in listed:
        if entry.startswith("%"):
            if wanted in {m.casefold() for m in _group_members(entry[1:])}:
                return True
        elif entry.casefold() == wanted:
            return True
    return False


def report_user(name: str) -> str | None:
    """The IMAP user a spool file name carries (``LABEL.TIME.PID.RANDOM.USERHEX``), or
    ``None`` (a report queued by an older wrapper, or no user known)."""
    parts = name.split(".")
    if len(parts) != 5 or not parts[4] or len(parts[4]) > USER_HEX_MAX:
        return None
    try:
        return bytes.fromhex(parts[4]).decode("utf-8")
    except ValueError:
        return None
