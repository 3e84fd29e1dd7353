"""Every way an address written by a sender can be read, for matching against the list.

The envelope sender and the From header are chosen by whoever sends the mail, and mail
programs do not all parse an odd address alike.  So nothing here decides what an address
"really" is: it collects every reading (the parsed addresses of each From field, every
address-like word in it, display names included, raw and with RFC 2047 words decoded),
and a blocked entry matching any reading blocks the message.  Each reading is
normalised the way entries are:

- the domain is the part after the *last* ``@`` (a domain has none), lower case, without
  trailing dots, non-ASCII names in their IDNA form (``blocked．com`` is ``blocked.com``);
- a quoted local part is unquoted (``"Boss"@x`` is ``boss@x``), a source route
  (``@relay:a@x``) dropped, the local part lower-cased;
- a local part that itself holds ``@``, ``%`` or ``!`` (``a@b.com@evil``,
  ``a%b.com@evil``, ``b.com!a@evil``) adds the domains inside it as readings too.

A domain reading is looked up with all its parent domains (``mail.b.com``: ``b.com``).
"""

from __future__ import annotations

import contextlib
import email.utils
import re
from collections.abc import Iterable

from ie_core.message import decode_header_value

_WORDS = re.compile(r"[^\s<>(),;:\"\[\]\\]*@[^\s<>(),;:\"\\]+")
_QUOTED_PAIR = re.compile(r"\\(.)")


def domain(text: str) -> str:
    """A domain as entries hold it (see the module docstring)."""
    name = text.strip().lower().rstrip(".")
    if not name.isascii():
        # a name the IDNA codec refuses is kept as written: its parents still match
        with contextlib.suppress(UnicodeError):
            name = name.encode("idna").decode("ascii").lower()
    return name.rstrip(".")


def _local(text: str) -> str:
    local = text.strip()
    if len(local) >= 2 and local.startswith('"') and local.endswith('"'):
        local = _QUOTED_PAIR.sub(r"\1", local[1:-1])
    return local.lower()


def readings(address: str) -> list[tuple[str, str]]:
    """The (local part, domain) pairs ``address`` can be read as; ``local`` is ``""``
    for a domain found inside a local part."""
    text = address.strip().strip("<>").strip()
    if text.startswith("@") and ":" in text:
        text = text.split(":", 1)[1]  # source route
    if "@" not in text:
        return []
    local, _, host = text.rpartition("@")
    found = [(_local(local), domain(host))]
    inner = _local(local)
    if "@" in inner:
        found.extend(readings(inner))  # shorter each time: "a@b.com" of "a@b.com@evil"
    if "%" in inner:
        found.extend(("", domain(part)) for part in inner.split("%")[1:])
    if "!" in inner:
        found.extend(("", domain(part)) for part in inner.split("!")[:-1])
    return [(lp, d) for lp, d in found if d]


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
    """Every address one can read in these header values (From fields as received)."""
    found: list[str] = []
    for raw in values:
        text = raw.encode("latin-1", "replace").decode("utf-8", "replace")
        for value in (text, decode_header_value(text)):
            found.extend(addr for _, addr in email.utils.getaddresses([value]) if addr)
            found.extend(_WORDS.findall(value))
    return found
