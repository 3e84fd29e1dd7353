"""The TOML configuration file: keys declared with defaults and docs, unknown keys rejected.

Core keys are declared here; plugins add theirs through the ``ie_config_keys`` hook.  Every
key is documented in ``docs/configuration.md`` (a test checks that).  Settings an admin
changes at run time through ``ie-cli`` do not live here but in the database
(:mod:`ie_core.settings`).
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ie_core.errors import ConfigError

DEFAULT_CONFIG_PATH = Path("/etc/ie/ie.toml")


@dataclass(frozen=True)
class ConfigKey:
    """One configuration key: ``section.name``, its type, default and one-line doc."""

    section: str
    name: str
    type: type
    default: Any
    doc: str

    @property
    def dotted(self) -> str:
        return f"{self.section}.{self.name}"


def default_data_dir() -> str:
    """``/var/lib/ie`` for root; ``$XDG_DATA_HOME/ie`` (``~/.local/share/ie``) otherwise."""
    if os.geteuid() == 0:
        return "/var/lib/ie"
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local/share")
    return os.path.join(base, "ie")


CORE_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("ie", "data_dir", str, "", "Directory for all state (database, held message bytes, "
              "sockets). Empty: /var/lib/ie for root, ~/.local/share/ie otherwise."),
    ConfigKey("ie", "database_url", str, "", "SQLAlchemy URL. Empty: SQLite (WAL) at "
              "DATA_DIR/ie.db. PostgreSQL: postgresql+psycopg://user@host/db."),
    ConfigKey("ie", "log_level", str, "info", "debug, info, warning or error."),
    ConfigKey("ie", "hostname", str, "", "Name used in our Received/EHLO lines. Empty: the "
              "host's name."),
    ConfigKey("plugins", "disabled", list, [], "Names of plugins (entry-point names) not to load."),
    ConfigKey("filter", "outgoing_listen", str, "127.0.0.1:10025", "HOST:PORT of the listener "
              "for mail local accounts send."),
    ConfigKey("filter", "incoming_listen", str, "127.0.0.1:10027", "HOST:PORT of the listener "
              "for mail arriving for local domains."),
    ConfigKey("filter", "reinject", str, "127.0.0.1:10026", "HOST:PORT of the MTA's "
              "reinjection listener (mail there is not filtered again)."),
    ConfigKey("filter", "incoming_reinject", str, "", "HOST:PORT where incoming mail is "
              "reinjected. Empty: same as filter.reinject."),
    ConfigKey("filter", "reinject_timeout", float, 60.0, "Seconds to wait for each reinjection "
              "reply before answering 451."),
    ConfigKey("filter", "duplicate_window", float, 86400.0, "Seconds during which a message "
              "the MTA hands over again (same queue id, same bytes) after ie delivered or "
              "held it is answered 250 without being sent or held again; 0 turns this off."),
    ConfigKey("filter", "log_keep_days", int, 90, "Days the message log (statistics, the "
              "Activity Monitor's history) keeps a row; never less than the duplicate window."),
    ConfigKey("filter", "reinject_idle", float, 30.0, "Seconds an idle reinjection connection "
              "is kept open for reuse."),
    ConfigKey("filter", "reinject_max_per_connection", int, 10, "Messages one reinjection "
              "connection carries before it is closed (0: no limit). Exim queues every "
              "message past smtp_accept_queue_per_connection (10) on one connection."),
    ConfigKey("filter", "max_message_size", int, 52428800, "Largest message accepted, in bytes; "
              "larger ones get 552 5.3.4."),
    ConfigKey("filter", "max_concurrent", int, 20, "Messages processed at once per listener: "
              "each worker process has 2 x this many threads, shared by both listeners' "
              "messages and RCPT checks."),
    ConfigKey("filter", "workers", int, 0, "Worker processes sharing the listeners (pre-fork); "
              "each runs filter.max_concurrent messages at once. 0: one per CPU core."),
    ConfigKey("ie", "pid_file", str, "", "ie-filterd's pid file (for ie-config reload and "
              "stop); empty: /run/ie/ie-filterd.pid as root, DATA_DIR/ie-filterd.pid "
              "otherwise."),
    ConfigKey("filter", "metrics_listen", str, "127.0.0.1:9425", "HOST:PORT of the monitoring "
              "endpoint (/metrics for Prometheus, /healthz); empty: off."),
    ConfigKey("filter", "metrics_top_accounts", int, 20, "Accounts shown in the per-account "
              "gauges of /metrics (the largest N), so the label set stays small."),
    ConfigKey("filter", "max_sessions", int, 100, "SMTP sessions at once per listener in each "
              "worker process; more get 421 4.3.2 and are closed (0: no limit)."),
    ConfigKey("filter", "spool_threshold", int, 1048576, "Message bodies larger than this "
              "many bytes are received into a private temporary file under DATA_DIR/spool "
              "instead of memory."),
    ConfigKey("filter", "max_large_in_flight", int, 2, "Messages over filter.spool_threshold "
              "processed at once per worker process (each is read into memory then); "
              "others wait."),
    ConfigKey("filter", "shutdown_grace", float, 60.0, "Seconds SIGTERM waits for messages in "
              "flight before exiting."),
    ConfigKey("pipeline", "outgoing", list, [], "Stage names for outgoing mail, in order. "
              "Empty: every registered stage, by its declared priority."),
    ConfigKey("pipeline", "incoming", list, [], "Stage names for incoming mail, in order. "
              "Empty: every registered stage, by its declared priority."),
    ConfigKey("identity", "auth_header", str, "", "Header our MTA configuration strips and "
              "re-adds with the authenticated user (Exim: X-IE-Auth-User). Empty: take the "
              "user from the topmost Received line only (Postfix)."),
    ConfigKey("identity", "userdomains_file", str, "/etc/userdomains", "cPanel-style "
              "'domain: user' map consulted after ie's own domain map."),
    ConfigKey("events", "wake_endpoint", str, "", "ZeroMQ endpoint the event subscriber binds "
              "and publishers connect to. Empty: ipc://DATA_DIR/events.ipc."),
    ConfigKey("events", "poll_interval", float, 5.0, "Seconds between outbox reads when no "
              "wake-up arrives."),
)


class Config:
    """Validated configuration: ``config.get("filter.reinject")``."""

    def __init__(self, values: Mapping[str, Any], keys: Mapping[str, ConfigKey],
                 path: Path | None) -> None:
        self._values = dict(values)
        self._keys = dict(keys)
        self.path = path

    def get(self, dotted: str) -> Any:
        if dotted not in self._keys:
            raise KeyError(dotted)
        return self._values.get(dotted, self._keys[dotted].default)

    @property
    def data_dir(self) -> Path:
        return Path(self.get("ie.data_dir") or default_data_dir())

    @property
    def database_url(self) -> str:
        return self.get("ie.database_url") or f"sqlite:///{self.data_dir / 'ie.db'}"

    def with_overrides(self, **dotted: Any) -> Config:
        """A copy with some values replaced (keys are ``section__name``)."""
        values = dict(self._values)
        for k, v in dotted.items():
            key = k.replace("__", ".")
            if key not in self._keys:
                raise ConfigError(f"unknown configuration key '{key}'")
            values[key] = v
        return Config(values, self._keys, self.path)


def resolve_path(explicit: str | os.PathLike[str] | None) -> tuple[Path, bool]:
    """The config file to read and whether it must exist (``--config`` or ``IE_CONFIG``)."""
    if explicit:
        return Path(explicit), True
    env = os.environ.get("IE_CONFIG")
    if env:
        return Path(env), True
    return DEFAULT_CONFIG_PATH, False


def read_raw(path: Path, required: bool) -> dict[str, Any]:
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        if required:
            raise ConfigError(f"configuration file {path} does not exist") from None
        return {}
    except PermissionError:
        if required:
            raise ConfigError(f"configuration file {path} is not readable") from None
        return {}
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None


def disabled_plugins(raw: Mapping[str, Any]) -> list[str]:
    """``plugins.disabled`` read before the plugins are loaded (they add keys)."""
    section = raw.get("plugins", {})
    value = section.get("disabled", []) if isinstance(section, dict) else []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError("plugins.disabled must be a list of plugin names")
    return value


def validate(raw: Mapping[str, Any], keys: Iterable[ConfigKey], path: Path | None) -> Config:
    """Check every key of ``raw`` against the declared ``keys``; build the Config."""
    by_name = {}
    for key in keys:
        if key.dotted in by_name:
            raise ConfigError(f"configuration key '{key.dotted}' is declared twice")
        by_name[key.dotted] = key
    sections = {k.section for k in by_name.values()}
    where = f" in {path}" if path else ""
    values: dict[str, Any] = {}
    for section, table in raw.items():
        if section not in sections:
            raise ConfigError(f"unknown configuration section '[{section}]'{where}")
        if not isinstance(table, dict):
            raise ConfigError(f"'{section}' must be a [section]{where}")
        for name, value in table.items():
            dotted = f"{section}.{name}"
            declared = by_name.get(dotted)
            if declared is None:
                raise ConfigError(f"unknown configuration key '{dotted}'{where}")
            values[dotted] = _coerce(declared, value, where)
    return Config(values, by_name, path)


def _coerce(key: ConfigKey, value: Any, where: str) -> Any:
    if key.type is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if key.type is int and isinstance(value, bool):
        raise ConfigError(f"'{key.dotted}' must be an integer{where}")
    if not isinstance(value, key.type):
        raise ConfigError(f"'{key.dotted}' must be of type {key.type.__name__}{where}, "
                          f"not {type(value).__name__}")
    return value


def parse_hostport(value: str, what: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{what} must be HOST:PORT, not {value!r}")
    return host.strip("[]") or "127.0.0.1", int(port)


def show_hostport(address: tuple[str, int]) -> str:
    """``host:port``, with an IPv6 host in brackets (the form :func:`parse_hostport` reads)."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
