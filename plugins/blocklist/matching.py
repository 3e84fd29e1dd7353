"""Every way an address written by a sender can be read, for matching against the list.

The envelope sender and the From header are chosen by whoever sends the mail, and mail
programs do not all parse an odd address alike.  So nothing here decides what an address
"really" is: it collects every reading (the parsed addresses of each From field, every
address-like word in it, display names included, raw and with RFC 2047 words decoded),
and a blocked entry matching any reading blocks the message.  Each reading is
normalised the way entries are:

- the domain is the part after the *last* ``@`` (a domain has none), lower case, without
  trailing dots or stray quotes, non-ASCII names in their IDNA form (``blocked．com`` is
  ``blocked.com``);
- a quoted local part is unquoted (``"Boss"@x`` is ``boss@x``), a source route
  (``@relay:a@x``) dropped, the local part lower-cased;
- every ``@`` splits a reading: ``a@b.com@evil`` is also ``a@b.com``, and a part holding
  ``%`` or ``!`` adds the domains inside it (``a%b.com@evil``, ``b.com!a@evil``).

A domain reading is looked up with all its parent domains (``mail.b.com``: ``b.com``).
Everything here costs time linear in what the sender wrote, however hostile.
"""

from __future__ import annotations

import contextlib
import email.utils
import re
from collections.abc import Iterable

from ie_core.message import decode_header_value

_QUOTED_PAIR = re.compile(r"\\(.)")
_RUN = re.compile(r"[^\s<>(),;:\"\\]+")
MAX_DOMAIN = 253
MAX_PARSED = 16384
"""From values longer than this are not given to the email package's address parser
(its cost on hostile input is not bounded); their address-like words are still read."""


def domain(text: str) -> str:
    """A domain as entries hold it (see the module docstring).  Of a name longer than a
    DNS name can be, the rightmost labels that fit are kept."""
    name = text.strip().strip("\"'").strip().lower().rstrip(".")
    if len(name) > MAX_DOMAIN:
        name = name[-MAX_DOMAIN:].partition(".")[2]
    if not name.isascii():
        # a name the IDNA codec refuses is kept as written: its parents still match
        with contextlib.suppress(UnicodeError):
            name = name.encode("idna").decode("ascii").lower()
    return name.rstrip(".")


def _local(text: str) -> str:
    local = text.strip()
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        local = _QUOTED_PAIR.sub(r"\1", local[1:-1])
    return local.strip('"').lower()


def readings(address: str) -> list[tuple[str, str]]:
    """The (local part, domain) pairs ``address`` can be read as; ``local`` is ``""``
    for a domain found inside a local part."""
    text = address.strip().strip("<>").strip()
    if text.startswith("@") and ":" in text:
        text = text.split(":", 1)[1]  # source route
    if "@" not in text:
        return []
    pieces = text.split("@")
    found = [(_local("@".join(pieces[:-1])), domain(pieces[-1]))]
    found += [(_local(a), domain(b)) for a, b in zip(pieces, pieces[1:], strict=False)]
    for piece in pieces[:-1]:
        found += [("", domain(part)) for part in piece.split("%")[1:]]
        found += [("", domain(part)) for part in piece.split("!")[:-1]]
    return [(lp, d) for lp, d in dict.fromkeys(found) if d]


def candidates(addresses: Iterable[str]) -> list[str]:
    """The entries that would cover any reading of any of ``addresses``: each address,
    its domain and each parent domain (two labels at least)."""
    out: dict[str, None] = {}
    for address in addresses:
        for local, host in readings(address):
            if local:
                out[f"{local}@{host}"] = None
            labels = host.split(".")
            for i in range(len(labels) - 1):
                out[".".join(labels[i:])] = None
    return list(out)


def header_addresses(values: Iterable[str]) -> list[str]:
    """Every address one can read in these header values (From fields as received):
    what the email package parses, and every run of characters between separators that
    holds an ``@``."""
    found: list[str] = []
    for raw in values:
        text = raw.encode("latin-1", "replace").decode("utf-8", "replace")
        for value in dict.fromkeys((text, decode_header_value(text))):
            if len(value) <= MAX_PARSED:
                found.extend(addr for _, addr in email.utils.getaddresses([value]) if addr)
            found.extend(m.group(0) for m in _RUN.finditer(value) if "@" in m.group(0))
    return found
