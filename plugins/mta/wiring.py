"""What every MTA integration provides, and helpers they share."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import jinja2

from ie_core import App, config
from ie_core.config import parse_hostport

from . import managed

MANAGED_ENCODING = ("utf-8", "surrogateescape")  # any byte survives a read/write round trip


class CheckFailed(Exception):
    """The MTA's own configuration check refused the new files (message is the MTA's)."""


class Conflict(Exception):
    """The existing configuration cannot be wired safely (another filter, a port in use...)."""


class Wiring(Protocol):
    name: str

    def installed(self) -> bool:
        """Is this MTA's configuration present on this host?"""

    def wired_files(self) -> list[Path]:
        """The MTA's files enable edits."""

    def extra_files(self) -> list[Path]:
        """Other files enable edits (ie's own configuration), restored by disable too."""

    def plan(self) -> dict[Path, str]:
        """New contents of every file whose text must change to be wired as configured."""

    def check(self) -> None:
        """Run the MTA's configuration check; raise :class:`CheckFailed` with its message."""

    def running(self) -> bool:
        """Does the MTA's daemon run?"""

    def reload(self) -> str:
        """Make a running MTA read its configuration again (never a restart); say what
        was done, or (it never raises) what failed and what the admin must do by hand."""

    def release_queue(self) -> str:
        """After disable: send the queued messages that were waiting for ie on their way
        without it; say what was done (it never raises)."""


def ie_config_file(app: App) -> Path:
    """ie's own configuration file: the one this ie read, else the default place (where
    enable may create it)."""
    return app.config.path or config.DEFAULT_CONFIG_PATH


def read_text(path: Path) -> str:
    return path.read_bytes().decode(*MANAGED_ENCODING)


def encode(text: str) -> bytes:
    return text.encode(*MANAGED_ENCODING)


def _strip(path: Path, text: str) -> str:
    try:
        return managed.strip(text)
    except managed.RegionError as err:
        raise managed.RegionError(f"{path}: {err}") from None


def unwired(path: Path) -> str | None:
    """The file's text without ie's regions, or ``None`` when it has none (or is missing);
    :class:`managed.RegionError` (naming the file) when its markers do not pair up."""
    try:
        text = read_text(path)
    except FileNotFoundError:
        return None
    return _strip(path, text) if managed.has_regions(text) else None


def restored(paths: Sequence[Path]) -> dict[Path, str | None]:
    """What disable writes: each file with ie's regions, as its text without them, or
    ``None`` (remove it) for a file enable created that holds nothing else."""
    out: dict[Path, str | None] = {}
    for path in paths:
        try:
            text = read_text(path)
        except FileNotFoundError:
            continue
        if managed.has_regions(text):
            stripped = _strip(path, text)
            out[path] = None if managed.created(text) else stripped
    return out


def run(args: Sequence[str], timeout: float = 60.0) -> tuple[int, str]:
    """(exit code, stdout and stderr) of a command; a missing program is exit 127, one that
    runs past ``timeout`` exit 124."""
    try:
        proc = subprocess.run(list(args), capture_output=True, text=True, errors="replace",
                              timeout=timeout, check=False)
    except FileNotFoundError:
        return 127, f"{args[0]}: not found"
    except subprocess.TimeoutExpired:
        return 124, f"{args[0]}: no answer after {timeout:g} seconds"
    return proc.returncode, (proc.stdout + proc.stderr)


def summarise(output: str, limit: int = 400) -> str:
    """The lines that matter from a tool's output, each once, on one line."""
    seen: list[str] = []
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    important = [i for i, line in enumerate(lines) if "fatal" in line or "error" in line.lower()]
    # an error line and the one after it (Exim names the line, then says what is wrong)
    picked = [lines[j] for i in important for j in (i, i + 1) if j < len(lines)]
    for line in picked or lines[-3:]:
        if line not in seen:
            seen.append(line)
    return " | ".join(seen)[:limit] or "no message"


def templates(app: App) -> jinja2.Environment:
    """Templates from ``mta.template_dir`` first (local changes), then ie's own."""
    loaders: list[jinja2.BaseLoader] = []
    if override := app.config.get("mta.template_dir"):
        loaders.append(jinja2.FileSystemLoader(override))
    loaders.append(jinja2.FileSystemLoader(str(Path(__file__).parent / "templates")))
    return jinja2.Environment(loader=jinja2.ChoiceLoader(loaders), trim_blocks=True,
                              lstrip_blocks=True, keep_trailing_newline=True,
                              undefined=jinja2.StrictUndefined, autoescape=False)


def render_lines(env: jinja2.Environment, name: str, **values: object) -> list[str]:
    text = env.get_template(name).render(**values)
    return [line for line in text.splitlines() if line.strip()]


def listen_addresses(app: App) -> dict[str, tuple[str, int]]:
    """``outgoing``, ``incoming``, ``reinject`` (and ``incoming_reinject``) as (host, port)."""
    out = {
        "outgoing": parse_hostport(app.config.get("filter.outgoing_listen"),
                                   "filter.outgoing_listen"),
        "incoming": parse_hostport(app.config.get("filter.incoming_listen"),
                                   "filter.incoming_listen"),
        "reinject": parse_hostport(app.config.get("filter.reinject"), "filter.reinject"),
    }
    if app.config.get("filter.incoming_reinject"):
        out["incoming_reinject"] = parse_hostport(app.config.get("filter.incoming_reinject"),
                                                  "filter.incoming_reinject")
    return out


def reinject_addresses(app: App) -> dict[str, tuple[str, int]]:
    """The reinjection entries of :func:`listen_addresses` (``reinject`` and, when set,
    ``incoming_reinject``)."""
    return {k: hp for k, hp in listen_addresses(app).items() if "reinject" in k}
