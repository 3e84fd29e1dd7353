"""Exim: a router/transport pair in front of all others, and a reinjection port.

- The routers ``ie_filter_outgoing`` and ``ie_filter_incoming`` come first; they accept
  every address of a message that has not been scanned yet and hand it to the transport
  for ie's outgoing or incoming listener.
- ie reinjects on ``filter.reinject``'s port, added to ``daemon_smtp_ports``; the RCPT
  ACL accepts its recipients first thing (they were checked on the way in).  Mail
  received there *from loopback* counts as scanned and skips ie's routers (the check
  uses ``$received_port`` and ``$sender_host_address``, both kept in the spool), so it is
  routed normally; anything else arriving there is filtered like any other mail.
  Exim queues every message past the 10th on one connection; ie closes a reinjection
  connection after ``filter.reinject_max_per_connection`` messages (10 by default).
- The transports remove the identity header (``identity.auth_header``, by default
  ``X-IE-Auth-User``) and add it from ``$authenticated_id``; enable writes that key into
  ie's configuration file when it is not set there.

Routers need the named domain list ``local_domains`` (Debian's configuration has it).
"""

from __future__ import annotations

import os
import re
import signal
from pathlib import Path

from ie_core import App

from . import managed
from .wiring import (
    CheckFailed,
    Conflict,
    ie_config_file,
    listen_addresses,
    read_text,
    reinject_addresses,
    render_lines,
    run,
    summarise,
    templates,
)

DEFAULT_HEADER = "X-IE-Auth-User"
DEFAULT_PID_FILE = "/run/exim4/exim.pid"
_BEGIN = re.compile(r"^\s*begin\s+(\w+)\s*$")
_PORTS = re.compile(r"^\s*daemon_smtp_ports?\s*=\s*(.*?)\s*$")
_RCPT_ACL = re.compile(r"^\s*acl_smtp_rcpt\s*=\s*(\S+)\s*$")
_LOCAL_DOMAINS = re.compile(r"^\s*domainlist\s+local_domains\s*=", re.M)
_IDENTITY = re.compile(r"^\s*\[\s*identity\s*\]\s*$")
_AUTH_KEY = re.compile(r"^\s*auth_header\s*=")


class EximWiring:
    name = "exim"

    def __init__(self, app: App) -> None:
        self.app = app
        self.config = Path(app.config.get("mta.exim_config"))
        self.binary = app.config.get("mta.exim_binary")
        self.ie_config = ie_config_file(app)

    @property
    def header(self) -> str:
        return str(self.app.config.get("identity.auth_header") or DEFAULT_HEADER)

    def installed(self) -> bool:
        return self.config.exists()

    def wired_files(self) -> list[Path]:
        return [self.config]

    def extra_files(self) -> list[Path]:
        return [self.ie_config]

    def plan(self) -> dict[Path, str]:
        if not self.config.exists():
            raise Conflict(f"{self.config} does not exist (set mta.exim_config)")
        if not re.fullmatch(r"[A-Za-z0-9-]+", self.header):
            raise Conflict(f"identity.auth_header {self.header!r} is not a header name")
        current = read_text(self.config)
        wanted = self.wire(managed.strip(current))
        changes = {} if wanted == current else {self.config: wanted}
        if not self.app.config.get("identity.auth_header"):
            changes[self.ie_config] = self.set_auth_header()
        return changes

    def wire(self, text: str) -> str:
        if not _LOCAL_DOMAINS.search(text):
            raise Conflict(f"{self.config} has no 'domainlist local_domains': ie's routers "
                           "need it to tell incoming from outgoing mail")
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            raise Conflict(f"{self.config} does not end with a newline: add one first")
        sections = {m.group(1): i for i, line in enumerate(lines) if (m := _BEGIN.match(line))}
        for needed in ("routers", "transports"):
            if needed not in sections:
                raise Conflict(f"{self.config} has no 'begin {needed}' section")
        main_end = min(sections.values())
        addr = listen_addresses(self.app)
        reinject = reinject_addresses(self.app)
        reinject_ports = sorted({p for _, p in reinject.values()})
        for k, (host, _) in reinject.items():
            if host not in ("127.0.0.1", "localhost"):
                raise Conflict(f"filter.{k} must be on 127.0.0.1 for Exim (it is {host})")
        env = templates(self.app)
        ports = " : ".join(str(p) for p in reinject_ports)
        not_scanned = (f"or{{ {{!forany{{{ports}}}{{eq{{$received_port}}{{$item}}}}}} "
                       "{!eq{$sender_host_address}{127.0.0.1}} }")
        edits: dict[int, tuple[bool, str]] = {}  # line -> (replace it?, region)
        ports_line = next((i for i in range(main_end) if _PORTS.match(lines[i])), None)
        if ports_line is None:
            current_ports = "smtp"
            where, replace = main_end - 1, False
        else:
            if lines[ports_line].rstrip().endswith("\\"):
                raise Conflict("daemon_smtp_ports continues on the next line: put it on "
                               "one line first")
            current_ports = _PORTS.match(lines[ports_line]).group(1)  # type: ignore[union-attr]
            where, replace = ports_line, True
        listed = [x.strip() for x in current_ports.split(":")]
        wanted_ports = [current_ports] + [str(p) for p in reinject_ports if str(p) not in listed]
        edits[where] = (replace, managed.region(
            [f"daemon_smtp_ports = {' : '.join(wanted_ports)}"],
            replaced=[lines[where]] if replace else ()))
        rcpt_acl = next((m.group(1) for line in lines[:main_end]
                         if (m := _RCPT_ACL.match(line))), None)
        acl_line = next((i for i in range(sections.get("acl", len(lines)), len(lines))
                         if lines[i].strip() == f"{rcpt_acl}:"), None)
        if rcpt_acl is None or acl_line is None:
            raise Conflict(f"{self.config} has no RCPT ACL (acl_smtp_rcpt and its 'begin acl' "
                           "entry): ie's reinjection port needs a statement there")
        edits[acl_line] = (False, managed.region(render_lines(
            env, "exim_acl_rcpt.j2", ports=ports)))
        edits[sections["routers"]] = (False, managed.region(render_lines(
            env, "exim_routers.j2", not_scanned=not_scanned)))
        edits[sections["transports"]] = (False, managed.region(render_lines(
            env, "exim_transports.j2", listen=addr, header=self.header)))
        out = []
        for i, line in enumerate(lines):
            replace, block = edits.get(i, (False, ""))
            out.append(block if replace else line + block)
        if where < 0:  # no main section lines at all: the ports go first
            out.insert(0, edits[where][1])
        return "".join(out)

    def set_auth_header(self) -> str:
        """ie's configuration with ``identity.auth_header`` set to the header Exim adds."""
        line = f'auth_header = "{self.header}"'
        try:
            text: str | None = read_text(self.ie_config)
        except FileNotFoundError:
            text = None
        if text is None or managed.created(text):  # disable removes it again
            return managed.new_file(["[identity]", line])
        text = managed.strip(text)
        lines = text.splitlines(keepends=True)
        for i, existing in enumerate(lines):
            if _IDENTITY.match(existing):
                for j in range(i + 1, len(lines)):
                    if lines[j].lstrip().startswith("["):
                        break
                    if _AUTH_KEY.match(lines[j]):
                        lines[j] = managed.region([line], replaced=[lines[j]])
                        return "".join(lines)
                lines[i] += managed.region([line])
                return "".join(lines)
        return managed.append(text, ["[identity]", line])

    def check(self) -> None:
        code, out = run([self.binary, "-C", str(self.config), "-bV"])
        if code != 0:
            raise CheckFailed(f"exim -bV: {summarise(out)}")

    def pid_file(self) -> Path:
        code, out = run([self.binary, "-C", str(self.config), "-bP", "pid_file_path"])
        m = re.search(r"pid_file_path\s*=\s*(\S+)", out) if code == 0 else None
        return Path(m.group(1) if m else DEFAULT_PID_FILE)

    def daemon_pid(self) -> int | None:
        """The pid in the daemon's pid file when that process is alive, else ``None``."""
        try:
            pid = int(self.pid_file().read_text().split()[0])
            os.kill(pid, 0)
        except PermissionError:
            return pid
        except (OSError, ValueError, IndexError):
            return None
        return pid

    def running(self) -> bool:
        return self.daemon_pid() is not None

    def release_queue(self) -> str:
        return "Exim routes its queue again at each attempt: nothing to requeue"

    def reload(self) -> str:
        pid = self.daemon_pid()
        try:
            if pid is None:
                raise ProcessLookupError
            os.kill(pid, signal.SIGHUP)
        except OSError:
            return "the Exim daemon is not running; it reads the new configuration when it starts"
        return f"Exim daemon (pid {pid}) told to reload (SIGHUP)"
