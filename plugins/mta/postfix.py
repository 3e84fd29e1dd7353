"""Postfix: an after-queue content filter set per service in master.cf.

- Outgoing services (``submission``, ``submissions``/``smtps``, ``pickup`` for local
  ``sendmail``) get ``-o content_filter=ie_filter:[ie's outgoing listener]``.
- Incoming services (``smtp``) get the incoming listener, except for the clients Postfix
  lets relay there, which go to the outgoing listener (``FILTER`` in
  ``smtpd_end_of_data_restrictions``): a SASL-authenticated one (``check_sasl_access``)
  and one in ``mynetworks`` (``check_client_access`` with :data:`CLIENTS_FILE`, a cidr
  table ie writes from ``mynetworks``).  Postfix filters a whole message through one
  listener, so such a client's message goes to the outgoing one with all its recipients.
- Every wired smtpd writes ``(Authenticated sender: USER)`` into its own Received line
  (``smtpd_sasl_authenticated_header=yes``); pickup writes ``(Postfix, from userid N)``.
  ie reads only the topmost Received line, which the client cannot write.
- A reinjection listener (``filter.reinject``) with ``content_filter=`` so mail coming back
  from ie is not filtered again, open to loopback only.

Every service that receives mail (smtpd, pickup, qmqpd) must be in one of the two lists,
or enable refuses: mail through an unlisted one would skip ie.

main.cf is only read (``postconf``): every change is an ie-filter region in master.cf,
whose ``-o`` options win over main.cf.  The one exception is ie's own earlier hand wiring,
which enable takes over (a main.cf ``content_filter`` to ie's listener, or the README's
master.cf lines), instead of refusing to chain a content filter.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

from ie_core import App

from . import managed
from .wiring import (
    CheckFailed,
    Conflict,
    listen_addresses,
    read_text,
    reinject_addresses,
    render_lines,
    run,
    summarise,
    templates,
)

TRANSPORT = "ie_filter"
CLIENTS_FILE = "ie-filter-clients.cidr"  # in mta.postfix_dir
RECEIVERS = ("smtpd", "pickup", "qmqpd")  # master.cf commands through which mail comes in
log = logging.getLogger("ie.mta")
POSTFIX = "/usr/sbin/postfix"
POSTCONF = "/usr/sbin/postconf"
POSTQUEUE = "/usr/sbin/postqueue"
POSTSUPER = "/usr/sbin/postsuper"
REQUEUE_BATCH = 100
# per-service options ie's own earlier hand wiring (the README's) set beside its
# content_filter; ie's region sets them while wired, and without the filter
# no_address_mappings would switch off the service's aliases
HAND_OPTIONS = frozenset({"receive_override_options=no_address_mappings",
                          "smtpd_sasl_authenticated_header=yes"})


@dataclass(frozen=True)
class Service:
    """One master.cf entry: its first line and the last of its continuation lines."""

    name: str
    type: str
    command: str
    first: int
    last: int

    @property
    def key(self) -> str:
        return f"{self.name}/{self.type}"


def services(lines: list[str]) -> list[Service]:
    found: list[Service] = []
    current: list[object] | None = None
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in " \t":
            if current is not None:
                current[4] = i
            continue
        if current is not None:
            found.append(Service(*current))  # type: ignore[arg-type]
        fields = stripped.split()
        command = fields[7] if len(fields) > 7 else ""
        current = [fields[0], fields[1] if len(fields) > 1 else "", command, i, i]
    if current is not None:
        found.append(Service(*current))  # type: ignore[arg-type]
    return found


def _options(lines: list[str], svc: Service) -> dict[str, str]:
    """``-o name=value`` options of one entry (the ``-o { name = value }`` form too)."""
    text = " ".join(line.strip() for line in lines[svc.first:svc.last + 1]
                    if not line.strip().startswith("#"))
    opts = {}
    for m in re.finditer(r"-o\s+(?:\{\s*([\w]+)\s*=\s*([^}]*)\}|([\w]+)=(\S*))", text):
        name = m.group(1) or m.group(3)
        opts[name] = (m.group(2) if m.group(1) else m.group(4)).strip()
    return opts


class PostfixWiring:
    name = "postfix"

    def __init__(self, app: App) -> None:
        self.app = app
        self.dir = Path(app.config.get("mta.postfix_dir"))
        self.master = self.dir / "master.cf"

    def installed(self) -> bool:
        return self.master.exists()

    @property
    def clients(self) -> Path:
        return self.dir / CLIENTS_FILE

    def wired_files(self) -> list[Path]:
        return [self.master]

    def extra_files(self) -> list[Path]:
        return [self.clients]

    def postconf(self, name: str, expand: bool = False) -> str:
        """main.cf's value of ``name`` (``expand``: with ``$name`` references expanded)."""
        code, out = run([POSTCONF, "-c", str(self.dir), "-xh" if expand else "-h", name])
        if code != 0:
            raise Conflict(f"postconf -c {self.dir} failed: {summarise(out)}")
        lines = [line for line in out.splitlines() if "warning:" not in line]
        return lines[-1].strip() if lines else ""

    def plan(self) -> dict[Path, str]:
        if not self.master.exists():
            raise Conflict(f"{self.master} does not exist (is Postfix installed? "
                           "set mta.postfix_dir)")
        if header := self.app.config.get("identity.auth_header"):
            raise Conflict(f"identity.auth_header is set to {header!r}, but Postfix reports "
                           "the user in its Received line and does not strip that header: "
                           "empty it in ie's configuration")
        changes: dict[Path, str] = {}
        hand_transport = None
        if existing := self.postconf("content_filter"):
            if not self.points_at_ie(existing):
                raise Conflict(f"main.cf already sets content_filter = {existing}; ie does "
                               "not chain content filters")
            # ie's own earlier hand wiring (the old README's): enable takes it over
            hand_transport = existing.partition(":")[0]
            main_cf = self.dir / "main.cf"
            changes[main_cf] = without_parameter(read_text(main_cf), "content_filter")
            log.info("event=hand_wiring_taken_over file=%s content_filter=%s", main_cf,
                     existing)
        current = read_text(self.master)
        wanted = self.wire(managed.strip(current), self.postconf("smtpd_end_of_data_restrictions"),
                           hand_transport)
        if wanted != current:
            changes[self.master] = wanted
        if (table := self.clients_change()) is not None:
            changes[self.clients] = table
        return changes

    def clients_change(self) -> str | None:
        """The text :attr:`clients` must have, or ``None`` when it has it already."""
        if re.search(r"[\s,{}]", str(self.clients)):
            raise Conflict(f"{self.dir}: ie cannot name a table in a directory whose name "
                           "has spaces, commas or braces")
        wanted = self.clients_table(self.postconf("mynetworks", expand=True))
        try:
            on_disk: str | None = read_text(self.clients)
        except FileNotFoundError:
            on_disk = None
        if on_disk is not None and not managed.created(on_disk):
            raise Conflict(f"{self.clients} exists and was not written by ie-config enable: "
                           "move it away")
        return None if wanted == on_disk else wanted

    def clients_table(self, mynetworks: str) -> str:
        """The cidr table that sends ``mynetworks`` clients to the outgoing listener (and
        leaves the ``!``-excluded ones alone), in ``mynetworks``' order: first match wins
        in both."""
        addr = listen_addresses(self.app)["outgoing"]
        lines = [f"# mynetworks = {mynetworks}"]
        for item in re.split(r"[\s,]+", mynetworks.strip()):
            if not item:
                continue
            negated = item.startswith("!")
            text = item.lstrip("!").replace("[", "").replace("]", "")
            try:
                network = ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise Conflict(f"mynetworks lists {item!r}: ie can send only addresses and "
                               "networks to its outgoing listener; write mynetworks as "
                               "addresses and networks") from None
            action = "DUNNO" if negated else f"FILTER {TRANSPORT}:[{addr[0]}]:{addr[1]}"
            lines.append(f"{network} {action}")
        return managed.new_file(lines)

    def points_at_ie(self, content_filter: str) -> bool:
        """Does a content_filter value (``transport:[host]:port``) name ie's listener?"""
        target = content_filter.partition(":")[2].replace("[", "").replace("]", "")
        return target in {f"{h}:{p}" for h, p in listen_addresses(self.app).values()}

    def hand_wired(self, lines: list[str], svc: Service) -> tuple[str, set[int]] | None:
        """ie's own earlier hand wiring of one service (the README's): the transport its
        ``-o content_filter=`` names when that is ie's listener, and the continuation
        lines that set it and ie's other per-service options (:data:`HAND_OPTIONS`);
        ``None`` when the service is not wired to ie by hand."""
        content_filter = _options(lines, svc).get("content_filter")
        if not content_filter or not self.points_at_ie(content_filter):
            return None
        own = set()
        for i in range(svc.first + 1, svc.last + 1):
            m = re.fullmatch(r"-o\s+(?:\{\s*(\w+)\s*=\s*(.*?)\s*\}|(\w+)=(\S*))",
                             lines[i].strip())
            if m is None:
                continue
            name, value = (m[1], m[2]) if m[1] else (m[3], m[4])
            if (name == "content_filter" and self.points_at_ie(value)) or \
                    f"{name}={value}" in HAND_OPTIONS:
                own.add(i)
        log.info("event=hand_wiring_taken_over file=%s service=%s content_filter=%s",
                 self.master, svc.key, content_filter)
        return content_filter.partition(":")[0], own

    def wire(self, text: str, end_of_data: str, hand_transport: str | None = None) -> str:
        """master.cf wired; ie's own earlier hand wiring is taken out (a service's
        ``-o content_filter=`` to ie's listener and the options beside it, the transport
        that it or main.cf's content_filter named, a reinjection listener with an empty
        content_filter), ie writes its own."""
        if text and not text.endswith("\n"):
            raise Conflict(f"{self.master} does not end with a newline: add one first")
        addr = listen_addresses(self.app)
        filter_for = {d: f"[{addr[d][0]}]:{addr[d][1]}" for d in ("outgoing", "incoming")}
        reinject = sorted({f"{h}:{p}" for h, p in reinject_addresses(self.app).values()})
        outgoing = set(self.app.config.get("mta.postfix_outgoing_services"))
        incoming = set(self.app.config.get("mta.postfix_incoming_services"))
        env = templates(self.app)
        lines = text.splitlines(keepends=True)
        entries = services(lines)
        regions: dict[int, str] = {}
        dropped: set[int] = set()
        hand_transports = {hand_transport} if hand_transport else set()
        for svc in entries:
            if (hand := self.hand_wired(lines, svc)) is not None:
                hand_transports.add(hand[0])
                dropped |= hand[1]
        kept = ["" if i in dropped else line for i, line in enumerate(lines)]
        for svc in entries:
            hand_written = ((svc.name in hand_transports and svc.command == "smtp")
                            or (svc.name in reinject and svc.command == "smtpd"
                                and _options(kept, svc).get("content_filter", "-") == ""))
            if hand_written:
                dropped.update(range(svc.first, svc.last + 1))
                continue
            if svc.name in (TRANSPORT, *reinject):
                raise Conflict(f"master.cf already defines a service {svc.name} ({svc.type}) "
                               "that ie needs for itself")
            direction = ("outgoing" if svc.key in outgoing else
                         "incoming" if svc.key in incoming else None)
            if direction is None:
                if svc.command in RECEIVERS:
                    raise Conflict(f"master.cf service {svc.key} runs {svc.command}, but it is "
                                   "in neither mta.postfix_outgoing_services nor "
                                   "mta.postfix_incoming_services: its mail would skip ie; "
                                   "add it to one of them")
                continue
            if other := _options(kept, svc).get("content_filter"):
                if self.points_at_ie(other):
                    raise Conflict(f"master.cf service {svc.key} sends its mail to ie "
                                   f"(content_filter={other}) on a line that holds more: "
                                   "take that option out by hand, then run enable again")
                raise Conflict(f"master.cf service {svc.key} already has content_filter="
                               f"{other}; ie does not chain content filters")
            regions[svc.last] = managed.region(render_lines(
                env, "postfix_service.j2", transport=TRANSPORT, filter_for=filter_for,
                direction=direction, smtpd=svc.command == "smtpd", end_of_data=end_of_data,
                clients=f"cidr:{self.clients}"), indent="  ")
        if not regions:
            raise Conflict("none of the services in mta.postfix_outgoing_services or "
                           "mta.postfix_incoming_services is defined in master.cf")
        out = []
        for i, line in enumerate(lines):
            if i not in dropped:
                out.append(line)
            if i in regions:
                out.append(regions[i])
        block = render_lines(env, "postfix_master.cf.j2", transport=TRANSPORT,
                             maxproc=self.app.config.get("filter.max_concurrent"),
                             reinject=reinject)
        return managed.append("".join(out), block)

    def check(self) -> None:
        code, out = run([POSTFIX, "-c", str(self.dir), "check"])
        if code != 0:
            raise CheckFailed(f"postfix check: {summarise(out)}")

    def running(self) -> bool:
        return run([POSTFIX, "-c", str(self.dir), "status"])[0] == 0

    def reload(self) -> str:
        if not self.running():
            return "Postfix is not running; it reads the new configuration when it starts"
        command = [POSTFIX, "-c", str(self.dir), "reload"]
        code, out = run(command)
        if code != 0:
            return (f"postfix reload failed ({summarise(out)}): the checked configuration is "
                    f"in place, run '{shlex.join(command)}' by hand")
        return "Postfix reloaded"

    def release_queue(self) -> str:
        """Postfix keeps the content filter in each queued message, so one deferred for
        ie's transport would stay deferred ("mail transport unavailable") after disable:
        requeue those (``postsuper -r``: cleanup processes them again, without the
        filter), then flush."""
        waiting = self.waiting_for_ie()
        if isinstance(waiting, str):
            return waiting
        if not waiting:
            return "no queued message was waiting for ie"
        for start in range(0, len(waiting), REQUEUE_BATCH):
            ids = waiting[start:start + REQUEUE_BATCH]
            command = [POSTSUPER, "-c", str(self.dir), *(a for i in ids for a in ("-r", i))]
            code, out = run(command)
            if code != 0:
                return (f"postsuper -r failed ({summarise(out)}): requeue them by hand with "
                        f"'postsuper -c {self.dir} -r ALL deferred'")
        run([POSTQUEUE, "-c", str(self.dir), "-f"])
        return f"requeued {len(waiting)} message(s) that were waiting for ie"

    def waiting_for_ie(self) -> list[str] | str:
        """Queue ids of deferred messages whose delay names ie's transport or listeners
        (or the words Postfix uses once the transport is gone); a message on failure."""
        code, out = run([POSTQUEUE, "-c", str(self.dir), "-j"])
        if code != 0:
            return f"postqueue -j failed ({summarise(out)}); check the queue with postqueue -p"
        listeners = [self.app.config.get(k) for k in ("filter.outgoing_listen",
                                                      "filter.incoming_listen")]
        # a listener refused the connection, or ie answered 4xx ("HOST[HOST] said: 451"):
        # requeueing a message that waited for something else on that host is harmless
        marks = ["transport unavailable", TRANSPORT, *listeners,
                 *(f"{h}[{h}] said" for h in {a.rpartition(":")[0].strip("[]")
                                              for a in listeners if a})]
        ids = []
        for line in out.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            reasons = " ".join(str(r.get("delay_reason", "")) for r in entry.get("recipients", []))
            address_seen = any(m and (m in reasons or _bracketed(m) in reasons) for m in marks)
            if entry.get("queue_name") == "deferred" and address_seen:
                ids.append(str(entry.get("queue_id")))
        return ids


def _bracketed(address: str) -> str:
    """``127.0.0.1:10025`` as Postfix writes it in a delay reason: ``127.0.0.1]:10025``."""
    host, _, port = address.rpartition(":")
    return f"{host.strip('[]')}]:{port}" if host else address


def without_parameter(main_cf: str, name: str) -> str:
    """``main_cf`` without the ``name = ...`` setting and its continuation lines."""
    out: list[str] = []
    skipping = False
    for line in main_cf.splitlines(keepends=True):
        if skipping and line[:1] in (" ", "\t") and line.strip():
            continue
        skipping = re.match(rf"{re.escape(name)}\s*=", line) is not None
        if not skipping:
            out.append(line)
    return "".join(out)
