"""Who sent it: the four sender objects, from sources the client cannot forge.

The authenticated user comes either from a header our own MTA configuration strips and
re-adds (``identity.auth_header``, Exim) or from the *topmost* Received line, which the
MTA itself wrote when it accepted the message (Postfix with
``smtpd_sasl_authenticated_header = yes`` writes "(Authenticated sender: USER)", and its
pickup service writes "(Postfix, from userid UID)").  Received lines below it may have
been written by anybody and are never read.

Even the topmost line holds words the client chose: its HELO name, and after ``id`` the
``for <recipient>`` clause (a quoted local part may hold spaces and parentheses).  So the
line is parsed in Postfix's own layout, left to right, and stops at the queue id:
``from HELO (NAME [ADDR]) (COMMENT)... by HOST (Postfix[, from userid UID]) [with PROTO]
id QUEUEID``.  Only the comments between the client's address and ``by`` (which Postfix
writes; a HELO name is one word) can name the authenticated sender, and only the product
comment can name the local user.  A line in any other layout gives no identity.
"""

from __future__ import annotations

import ipaddress
import pwd
import re
from dataclasses import dataclass

from ie_core import rawheaders
from ie_core.message import MessageContext, SenderIdentity

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


MAX_EMAIL = 254
MAX_LOCAL = 64
MAX_DOMAIN = 253
_DNS_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
_LOCAL_SPECIALS = set("!#$%&'*+/=?^_`{|}~-")


def normalise_domain(text: str) -> str | None:
    """The domain in lower-case ASCII (IDNA for non-ASCII names), or ``None`` if it is
    not a valid host name with at least two labels."""
    name = text.strip().rstrip(".").lower()
    if not name or len(name) > MAX_DOMAIN:
        return None
    if not name.isascii():
        try:
            name = name.encode("idna").decode("ascii")
        except UnicodeError:
            return None
    labels = name.split(".")
    if len(name) > MAX_DOMAIN or len(labels) < 2:
        return None
    if not all(_DNS_LABEL.match(label) for label in labels) or not _TLD.match(labels[-1]):
        return None
    return name


def _valid_local(local: str) -> bool:
    if not 1 <= len(local) <= MAX_LOCAL or local.startswith(".") or local.endswith("."):
        return False
    if ".." in local:
        return False
    return all(c == "." or c in _LOCAL_SPECIALS or c.isalnum() for c in local)


def normalise_email(text: str) -> str | None:
    """``local@domain`` with the domain normalised; ``None`` if it is not an address."""
    address = text.strip()
    if address.count("@") != 1 or len(address) > MAX_EMAIL:
        return None
    local, _, domain_part = address.partition("@")
    domain = normalise_domain(domain_part)
    if domain is None or not _valid_local(local):
        return None
    return f"{local.lower()}@{domain}"


def normalise_address(address: str) -> str | None:
    address = address.strip().strip("<>").strip()
    if not address or "@" not in address or len(address) > MAX_ADDRESS:
        return None
    return address.lower()


def domain_of(address: str | None) -> str | None:
    if not address:
        return None
    return address.rpartition("@")[2].rstrip(".") or None


@dataclass(frozen=True)
class PostfixReceived:
    """What Postfix itself wrote in a Received line, up to the queue id."""

    comments: tuple[str, ...]
    """The comments between the client's address and ``by`` (TLS, authentication)."""
    userid: int | None
    """``from userid UID`` of the pickup service (local submission)."""
    queue_id: str
    client_address: str | None = None
    """The client's IP address from "(NAME [ADDR])", which Postfix writes (``None`` for a
    local submission, which has no ``from`` part)."""


_WORD = re.compile(r"\S+")
_PRODUCT = re.compile(r"\(Postfix(?:, from userid (\d{1,10}))?\)")
_QUEUE_WORD = re.compile(r"[0-9A-Za-z]{5,40}")
_CLIENT = re.compile(r"\S+ \[(?:IPv6:)?([0-9A-Fa-f:.]{2,45})\](?::\d{1,5})?")
_EXIM_CLIENT = re.compile(r"from (?:\[([0-9A-Fa-f:.]{2,45})\]"  # from [ADDR]
                          r"|[^\s()\[\]]+ \(\[([0-9A-Fa-f:.]{2,45})\])")  # from NAME ([ADDR]
_AUTH_SENDER = re.compile(r"Authenticated sender: ([^()\s]+)")
_EXIM_ID = re.compile(r"(?<!\S)id ([0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4})(?![^\s;])")


def _comment(text: str, pos: int) -> int | None:
    """The end of the parenthesised comment starting at ``pos`` (nesting allowed), or
    ``None`` when there is none."""
    if pos >= len(text) or text[pos] != "(":
        return None
    depth = 0
    for i in range(pos, len(text)):
        if text[i] == "(":
            depth += 1
        elif text[i] == ")":
            depth -= 1
            if depth == 0:
                return i + 1
    return None


def parse_postfix_received(line: str) -> PostfixReceived | None:
    """Read a (whitespace-collapsed) Received value in Postfix's layout; ``None`` if it
    is not one."""
    pos = 0
    comments: list[str] = []
    client: str | None = None
    if line.startswith("from "):
        helo = _WORD.match(line, 5)
        if helo is None:
            return None
        pos = helo.end() + 1
        client_end = _comment(line, pos)  # "(NAME [ADDR])", written by Postfix
        if client_end is None:
            return None
        if m := _CLIENT.fullmatch(line, pos + 1, client_end - 1):
            client = m.group(1)
        pos = client_end + 1
        while (end := _comment(line, pos)) is not None:
            comments.append(line[pos + 1:end - 1])
            pos = end + 1
    if not line.startswith("by ", pos):
        return None
    host = _WORD.match(line, pos + 3)
    if host is None:
        return None
    product = _PRODUCT.match(line, host.end() + 1)
    if product is None:
        return None
    pos = product.end() + 1
    if line.startswith("with ", pos):
        proto = _WORD.match(line, pos + 5)
        if proto is None:
            return None
        pos = proto.end() + 1
    if not line.startswith("id ", pos):
        return None
    qid = _QUEUE_WORD.match(line, pos + 3)
    if qid is None or line[qid.end():qid.end() + 1] not in ("", " ", ";"):
        return None
    userid = int(product.group(1)) if product.group(1) else None
    return PostfixReceived(tuple(comments), userid, qid.group(0), client)


def top_received(ctx: MessageContext) -> str | None:
    """The topmost Received value (the one our MTA wrote), unfolded and collapsed."""
    found = rawheaders.values(ctx.raw, "Received")
    return found[0] if found else None


def trusted_auth(ctx: MessageContext, auth_header: str) -> tuple[str | None, str | None]:
    """(authenticated user, local Unix user) as written by our MTA."""
    if auth_header:
        values = rawheaders.values(ctx.raw, auth_header)
        value = values[0].strip() if values else ""
        if not value:
            return None, None
        return (value.lower(), None) if "@" in value else (None, value)
    top = top_received(ctx)
    parsed = parse_postfix_received(top) if top else None
    if parsed is None:
        return None, None
    for comment in parsed.comments:
        if m := _AUTH_SENDER.fullmatch(comment):
            user = m.group(1)
            return (user.lower(), None) if "@" in user else (None, user)
    if parsed.userid is not None:
        try:
            return None, pwd.getpwuid(parsed.userid).pw_name
        except (KeyError, OverflowError, ValueError):
            return None, None
    return None, None


def client_address(ctx: MessageContext) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address of the client that handed the message to our MTA, as the MTA itself
    wrote it at the start of the topmost Received line: Postfix's "from HELO (NAME
    [ADDR])" (parsed in Postfix's layout up to the queue id), Exim's "from [ADDR]" or
    "from NAME ([ADDR]" (a verified name; the HELO name comes after it).  The client
    chooses its HELO name and any Received lines below, never these parts.  ``None``
    for a local submission, another layout or an invalid address."""
    top = top_received(ctx)
    if not top:
        return None
    parsed = parse_postfix_received(top)
    if parsed is not None:
        text = parsed.client_address
    elif "(Exim " in top and (m := _EXIM_CLIENT.match(top)):
        text = m.group(1) or m.group(2)
    else:
        return None
    try:
        return ipaddress.ip_address(text) if text else None
    except ValueError:
        return None


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


def queue_id(ctx: MessageContext) -> str | None:
    """The MTA's queue id from the topmost Received line, read in Postfix's or Exim's own
    layout (``... id 4Xc1Yz2abc; date``); ``None`` for any other line, so that an ``id``
    in a HELO name, an envelope sender or a recipient is never taken for it."""
    top = top_received(ctx)
    if not top:
        return None
    parsed = parse_postfix_received(top)
    if parsed is not None:
        return parsed.queue_id
    if "(Exim " not in top:
        return None
    # Exim writes the envelope sender and the recipient around its id, and both may hold
    # "id <something in Exim's format>": a line with more than one candidate has none.
    candidates = _EXIM_ID.findall(top)
    return candidates[0] if len(candidates) == 1 else None
