"""``ie-config status`` items for the MTA side: does the MTA ie is wired into run, and does
every reinjection listener answer?  Without them ie cannot hand mail back: it answers 451
and the mail waits, which the listener items alone do not show."""

from __future__ import annotations

import contextlib
import socket

from ie_core import App, StatusItem

from . import managed
from .wiring import Wiring, reinject_addresses, unwired

TIMEOUT = 3.0  # seconds for the connection and for the greeting


def greeting(host: str, port: int) -> str:
    """The first line an SMTP server sends on connecting (``OSError`` when none comes
    within :data:`TIMEOUT`)."""
    with socket.create_connection((host, port), timeout=TIMEOUT) as sock:
        sock.settimeout(TIMEOUT)
        data = b""
        while b"\n" not in data and len(data) < 512:
            chunk = sock.recv(512)
            if not chunk:
                break
            data += chunk
        with contextlib.suppress(OSError):  # a polite end; the reply is not awaited
            sock.sendall(b"QUIT\r\n")
    return data.split(b"\n", 1)[0].decode("ascii", "replace").strip()


def reinjection_items(app: App) -> list[StatusItem]:
    items = []
    for key, (host, port) in reinject_addresses(app).items():
        name = f"reinjection {key}"
        try:
            line = greeting(host, port)
        except OSError as err:
            items.append(StatusItem(name, False, f"{host}:{port} not answering "
                                                 f"({err.strerror or err})"))
            continue
        ok = line.startswith("220")
        items.append(StatusItem(name, ok, f"{host}:{port} {line[:60]}" if ok else
                                f"{host}:{port} answered {line[:60]!r}, not an SMTP greeting"))
    return items


def running_items(wirings: list[Wiring]) -> list[StatusItem]:
    """One item per MTA ie is wired into (none when it is wired into none: the "MTA wired
    in" item says so)."""
    items = []
    for wiring in wirings:
        try:
            if not any(unwired(p) is not None for p in wiring.wired_files()):
                continue
        except (managed.RegionError, OSError):
            continue  # the "MTA wired in" item reports it
        if wiring.running():
            items.append(StatusItem("MTA running", True, f"{wiring.name}: running"))
        else:
            items.append(StatusItem("MTA running", False, f"{wiring.name} is not running: "
                                    "start it (ie cannot hand mail back meanwhile)"))
    return items
