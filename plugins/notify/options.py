"""What the notifier reads: configuration keys (the file) and run-time switches (the
database, changed with ``ie-cli filter-settings`` or ``ie-cli notify schedule``)."""

from __future__ import annotations

from datetime import timedelta

from ie_core import App, ConfigKey
from ie_core.runtime import RuntimeSetting, current

PERIODS: dict[str, timedelta | None] = {
    "never": None,
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(weeks=1),
}

CONFIG_KEYS: tuple[ConfigKey, ...] = (
    ConfigKey("notify", "admin_address", str, "", "The server admin's address (postmaster). "
              "Empty: postmaster@HOSTNAME."),
    ConfigKey("notify", "from_address", str, "", "From: and envelope sender of notifications. "
              "Empty: ie-notify@HOSTNAME."),
    ConfigKey("notify", "template_dir", str, "/etc/ie/notify-templates", "Directory whose "
              "*.j2 files override the shipped templates of the same name."),
    ConfigKey("notify", "retry_base", float, 60.0, "Seconds before the first retry after a "
              "4xx; doubled on each further 4xx."),
    ConfigKey("notify", "retry_max", float, 3600.0, "Longest wait between two retries, in "
              "seconds."),
    ConfigKey("notify", "max_attempts", int, 12, "Tries before a notification that keeps "
              "getting 4xx is recorded as failed."),
    ConfigKey("notify", "tick_interval", float, 30.0, "Seconds between ie-notifyd's checks "
              "for due digests and retries."),
)

ADMIN_HELD = RuntimeSetting("notify.admin_held", str, "summary",
                            "Tell the admin about held mail: a notice for each message, a "
                            "periodic summary, or not at all.", ("each", "summary", "off"))
ADMIN_SUMMARY = RuntimeSetting("notify.admin_summary", str, "daily",
                               "How often the admin's summary of held mail goes out.",
                               ("hourly", "daily", "weekly"))
ADMIN_LIMIT = RuntimeSetting("notify.admin_limit_exceeded", bool, True,
                             "Tell the admin when a sender object first goes over its limit.")
ADMIN_BLOCKED = RuntimeSetting("notify.admin_account_blocked", bool, True,
                               "Tell the admin when an account is blocked.")
OWNER_DIGEST = RuntimeSetting("notify.owner_digest", str, "daily",
                              "Default period of the account owners' digest of their held "
                              "mail (ie-cli notify schedule sets one account's).",
                              tuple(PERIODS))
OWNER_ACTIONS = RuntimeSetting("notify.owner_actions", bool, True,
                               "Tell the account owner when the admin released or deleted "
                               "one of their held messages.")

RUNTIME_SETTINGS = (ADMIN_HELD, ADMIN_SUMMARY, ADMIN_LIMIT, ADMIN_BLOCKED, OWNER_DIGEST,
                    OWNER_ACTIONS)


def admin_address(app: App) -> str:
    return app.config.get("notify.admin_address") or f"postmaster@{app.hostname}"


def from_address(app: App) -> str:
    return app.config.get("notify.from_address") or f"ie-notify@{app.hostname}"


def owner_schedule_key(account: str) -> str:
    return f"notify.owner_digest:{account}"


def owner_period(app: App, account: str) -> str:
    """The account's own digest period, else the server-wide default."""
    value = app.settings.get(owner_schedule_key(account))
    return value if value in PERIODS else str(current(app, OWNER_DIGEST))

