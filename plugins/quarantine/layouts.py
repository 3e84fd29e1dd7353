"""Text output in the layouts the Imunify Email CLI documents, so scripts written for it
keep parsing ours (docs/quarantine.md; the JSON keys are Imunify's too)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

RULE = "-" * 107
NO_DATA = "No available data"


def printable(value: Any) -> str:
    """Text from a message, safe for a terminal (no control characters)."""
    return "".join(c if c.isprintable() else "?" for c in str(value))


def emails_list(data: dict[str, Any]) -> str:
    """Blocks of ``Email_ID``, ``Size_Bytes``, ``Account_Name``, ``Recipients``,
    ``Subject`` and our ``Direction`` (after Imunify's lines) between rules, then
    ``Max Count``."""
    out = []
    for i in data["items"]:
        out += [RULE, f"Email_ID {i['email_id']}",
                f"Size_Bytes\t      {i['size_bytes']}",
                f"Account_Name\t  {printable(i['account_name'])}",
                f"Recipients\t      {printable(', '.join(i['recipients']))}",
                f"Subject        \t  {printable(i['subject'])}",
                f"Direction\t      {i['direction']}", ""]
    if not data["items"]:
        out.append(NO_DATA)
    out += [RULE, f"Max Count\t     {data['max_count']}"]
    return "\n".join(out)


def emails_show(data: dict[str, Any]) -> str:
    """``EmailID:``, ``SizeBytes:`` ... ``ReceivedDate:`` (a Unix time), the headers, the
    body."""
    received = int(datetime.fromisoformat(data["received_date"]).timestamp())
    meta = [("EmailID", data["email_id"]), ("SizeBytes", data["size_bytes"]),
            ("AccountName", data["account_name"]), ("Sender", data["sender"]),
            ("Recipients", ", ".join(data["recipients"])), ("ReceivedDate", received),
            ("Subject", data["subject"]), ("Reasons", ", ".join(data["reasons"])),
            ("Score", data["score"]), ("State", data["state"]),
            ("Direction", data["direction"])]
    out = [_field(name, value) for name, value in meta] + [""]
    out += [_field(h["name"], h["value"]) for h in data["headers"]] + [""]
    body = [printable(line) for line in data["body"].splitlines()] or [""]
    out += [f"Body: {body[0]}", *body[1:]]
    return "\n".join(out)


def _field(name: str, value: Any) -> str:
    return f"{printable(name) + ':':30}{printable(value)}"


ACCOUNT_COLUMNS = ("Name", "LimitBytes", "UsedBytes", "State", "ReleasesLimit (hourly)")


def account_rows(items: list[dict[str, Any]]) -> list[str]:
    """The accounts table: Imunify's columns, then any other switch (incoming ...)."""
    extra = sorted({k for i in items for k in i} - {
        "name", "limit_bytes", "used_bytes", "state", "releases_limit", "deleted_last_hour"})
    header = [*ACCOUNT_COLUMNS, "DeletedLastHour", *(k.capitalize() for k in extra)]
    rows = [[printable(i["name"]), str(i["limit_bytes"]), str(i["used_bytes"]), i["state"],
             str(i["releases_limit"]), str(i["deleted_last_hour"]),
             *(printable(i.get(k, "")) for k in extra)] for i in items]
    widths = [max(len(r[n]) for r in [header, *rows]) for n in range(len(header))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=True)).rstrip()
            for r in [header, *rows]]


def accounts_list(data: dict[str, Any]) -> str:
    if not data["items"]:
        return NO_DATA + f"\n\nMax Count {data['max_count']}"
    return "\n".join(account_rows(data["items"]) + ["", f"Max Count {data['max_count']}"])


def settings_table(values: dict[str, int]) -> str:
    """``Setting IntValue`` rows (``quarantine-defaults list`` and ``set``)."""
    return "\n".join([f"{'Setting':17}IntValue",
                      *(f"{name:17}{value}" for name, value in values.items())])
