"""Who sent it: the four sender objects, from sources the client cannot forge.

The authenticated user comes either from a header our own MTA configuration strips and
re-adds (``identity.auth_header``, Exim) or from the *topmost* Received line, which the
MTA itself wrote when it accepted the message (Postfix with
``smtpd_sasl_authenticated_header = yes`` writes "(Authenticated sender: USER)", and its
pickup service writes "(Postfix, from userid UID)").  Received lines below it may have
been written by anybody and are never read.
"""

from __future__ import annotations

import pwd
import re

from ie_core.message import MessageContext, SenderIdentity

_AUTH_SENDER = re.compile(r"\(Authenticated sender:\s*([^)\s]+)\)", re.I)
_USERID = re.compile(r"\(Postfix, from userid (\d+)\)", re.I)
_SCRIPT_HEADERS = ("X-PHP-Script", "X-PHP-Originating-Script")
MAX_ADDRESS = 320
_DOMAIN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}$")
_ACCOUNT = re.compile(r"^[a-z_][a-z0-9_.-]{0,63}$", re.I)


def valid_domain(value: str) -> bool:
    """A DNS name with at least two labels (``example.com``); no spaces, no ``..``."""
    return bool(_DOMAIN.match(value.lower().rstrip(".")))


def valid_account(value: str) -> bool:
    """A hosting account (Unix user) name: safe in paths, SQL and Sieve alike."""
    return bool(_ACCOUNT.match(value)) and ".." not in value


def normalise_address(address: str) -> str | None:
    address = address.strip().strip("<>").strip()
    if not address or "@" not in address or len(address) > MAX_ADDRESS:
        return None
    return address.lower()


def domain_of(address: str | None) -> str | None:
    if not address:
        return None
    return address.rpartition("@")[2].rstrip(".") or None


def trusted_auth(ctx: MessageContext, auth_header: str) -> tuple[str | None, str | None]:
    """(authenticated user, local Unix user) as written by our MTA."""
    if auth_header:
        value = ctx.header(auth_header).strip()
        if not value:
            return None, None
        return (value.lower(), None) if "@" in value else (None, value)
    received = ctx.head.get_all("Received") or []
    if not received:
        return None, None
    top = str(received[0])
    if m := _AUTH_SENDER.search(top):
        user = m.group(1)
        return (user.lower(), None) if "@" in user else (None, user)
    if m := _USERID.search(top):
        try:
            return None, pwd.getpwuid(int(m.group(1))).pw_name
        except (KeyError, OverflowError, ValueError):
            return None, None
    return None, None


def parse_script(value: str) -> tuple[str | None, str | None]:
    """(domain, path) of a PHP script header.

    cPanel writes ``example.com/path/to/script.php for 1.2.3.4``; PHP's own
    ``X-PHP-Originating-Script`` is ``UID:script.php``.
    """
    value = value.split(" for ", 1)[0].strip()
    if not value:
        return None, None
    uid, colon, rest = value.partition(":")
    if colon and uid.isdigit():
        return None, rest or None
    head, slash, tail = value.partition("/")
    if slash and "." in head:
        return head.lower(), "/" + tail
    return None, value


def identify(ctx: MessageContext, auth_header: str) -> SenderIdentity:
    """Fill in everything but the account (the resolver hook decides that)."""
    auth_user, local_user = trusted_auth(ctx, auth_header)
    sender = auth_user if auth_user and "@" in auth_user else normalise_address(ctx.mail_from)
    script = next((v for h in _SCRIPT_HEADERS if (v := ctx.header(h))), None)
    script_domain, script_path = parse_script(script) if script else (None, None)
    return SenderIdentity(
        account="root", domain=domain_of(sender), sender_email=sender,
        script=script[:1024] if script else None, script_domain=script_domain,
        script_path=script_path, auth_user=auth_user, local_user=local_user)


_QUEUE_ID = re.compile(r";|\bid\s+([A-Za-z0-9][A-Za-z0-9.-]{4,40})")


def queue_id(ctx: MessageContext) -> str | None:
    """The MTA's queue id from the topmost Received line ("... id 4Xc1Yz2abc; date")."""
    received = ctx.head.get_all("Received") or []
    if not received:
        return None
    for m in _QUEUE_ID.finditer(str(received[0])):
        if m.group(0) == ";":
            return None
        return m.group(1)
    return None
