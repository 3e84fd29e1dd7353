"""Strict parsing of what may go on a whitelist: an email address or a domain name."""

from __future__ import annotations

import re

from ie_core import InvalidInput

MAX_EMAIL = 254
MAX_LOCAL = 64
MAX_DOMAIN = 253
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_TLD = re.compile(r"^(?:[a-z]{2,63}|xn--[a-z0-9-]{1,59})$")
_LOCAL_SPECIALS = set("!#$%&'*+/=?^_`{|}~-")


def _shown(value: str) -> str:
    if len(value) > 60:
        return f"{value[:60]!r}... ({len(value)} characters)"
    return repr(value)


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
    if not all(_LABEL.match(label) for label in labels) or not _TLD.match(labels[-1]):
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


def parse_entry(kind: str, text: str) -> str:
    """What ``text`` becomes on the ``kind`` list; :class:`InvalidInput` if it may not go
    there (authuser: email addresses only; sender and recipient: email or domain)."""
    if "@" in text or kind == "authuser":
        email = normalise_email(text)
        if email is None:
            hint = " (the authuser list takes email addresses only)" if kind == "authuser" \
                and "@" not in text else ""
            raise InvalidInput(f"invalid email address: {_shown(text)}{hint}")
        return email
    domain = normalise_domain(text)
    if domain is None:
        raise InvalidInput(f"invalid email address or domain: {_shown(text)} (accounts and "
                           "scripts cannot be whitelisted, only addresses and domains)")
    return domain


def lookup_candidates(address: str) -> list[str]:
    """The entries that would cover ``address``: itself, then its domain and each parent
    domain (``a@mail.example.com`` -> ``mail.example.com``, ``example.com``)."""
    address = address.strip().strip("<>").strip().lower().rstrip(".")
    if not address:
        return []
    out = [address] if "@" in address else []
    domain = address.rpartition("@")[2]
    labels = domain.split(".")
    out.extend(".".join(labels[i:]) for i in range(len(labels) - 1))
    return out
