"""Strict parsing of what may go on a whitelist: an email address or a domain name."""

from __future__ import annotations

from ie_core import InvalidInput
from ie_core.identity import normalise_domain, normalise_email


def _shown(value: str) -> str:
    if len(value) > 60:
        return f"{value[:60]!r}... ({len(value)} characters)"
    return repr(value)


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
